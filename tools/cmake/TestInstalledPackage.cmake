# ctest's check of the installed package (tests/CMakeLists.txt): installs the build in BUILD into a
# fresh prefix under WORK, then configures, builds and runs the consumer project in SOURCE against it,
# with the build's compiler and flags (a sanitized fpi needs a sanitized link).
#   cmake -DBUILD=... -DSOURCE=... -DWORK=... -DCXX=... -DCXX_FLAGS=... -DLINK_FLAGS=... -P TestInstalledPackage.cmake
file(REMOVE_RECURSE ${WORK})
function(run_step)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "failed (${status}): ${ARGV}\n${out}\n${err}")
  endif()
endfunction()
run_step(${CMAKE_COMMAND} --install ${BUILD} --prefix ${WORK}/prefix)
run_step(${CMAKE_COMMAND} -S ${SOURCE} -B ${WORK}/build -G Ninja -DCMAKE_BUILD_TYPE=Release
         -DCMAKE_PREFIX_PATH=${WORK}/prefix -DCMAKE_CXX_COMPILER=${CXX} "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}"
         "-DCMAKE_EXE_LINKER_FLAGS=${LINK_FLAGS}")
run_step(${CMAKE_COMMAND} --build ${WORK}/build)
execute_process(COMMAND ${WORK}/build/consumer RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err)
message(STATUS "${out}${err}")
if(NOT status EQUAL 0)
  message(FATAL_ERROR "the consumer program failed (${status})")
endif()
