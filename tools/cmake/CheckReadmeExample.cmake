# Script mode (cmake -DREADME=... -DEXAMPLE=... [-DSTART=text] -P): fails unless the README contains
# EXAMPLE's code verbatim, everything from its first START on ("#include" by default, which skips a C++
# file's opening comment), so the example users read is the one the build compiles or the tests load.
if(NOT DEFINED START)
  set(START "#include")
endif()
file(READ "${EXAMPLE}" example)
file(READ "${README}" readme)
string(STRIP "${example}" example)
string(FIND "${example}" "${START}" code_start)
if(code_start EQUAL -1)
  message(FATAL_ERROR "${EXAMPLE} has no '${START}' to start the comparison from")
endif()
string(SUBSTRING "${example}" ${code_start} -1 code)
string(FIND "${readme}" "${code}" found)
if(found EQUAL -1)
  message(FATAL_ERROR "README.md does not contain the code of ${EXAMPLE} verbatim. Copy it into the "
                      "README's example (everything from the first ${START} on)")
endif()
