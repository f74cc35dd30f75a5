# Script mode (cmake -DREADME=... -DEXAMPLE=... -P): fails unless the README contains EXAMPLE's code
# verbatim, everything after its opening comment, so the example users read is the one the build compiles.
file(READ "${EXAMPLE}" example)
file(READ "${README}" readme)
string(FIND "${example}" "#include" code_start)
if(code_start EQUAL -1)
  message(FATAL_ERROR "${EXAMPLE} has no #include line to start the comparison from")
endif()
string(SUBSTRING "${example}" ${code_start} -1 code)
string(FIND "${readme}" "${code}" found)
if(found EQUAL -1)
  message(FATAL_ERROR "README.md does not contain the code of ${EXAMPLE} verbatim. Copy it into the "
                      "README's C++ example (everything from the first #include on)")
endif()
