find_package(GTest REQUIRED)
include(GoogleTest)

# MPI launcher used to run multi-process tests: mpiexec with the flags this machine needs.
set(DECENT_MPIEXEC ${MPIEXEC_EXECUTABLE})
set(DECENT_MPIEXEC_FLAGS --oversubscribe --bind-to none)
execute_process(COMMAND id -u OUTPUT_VARIABLE _uid OUTPUT_STRIP_TRAILING_WHITESPACE)
if(_uid STREQUAL "0")
  list(APPEND DECENT_MPIEXEC_FLAGS --allow-run-as-root)
endif()

# decent_add_mpi_test(NAME target NP n [ARGS ...]): runs `target` as an n-process MPI job.
function(decent_add_mpi_test name target np)
  add_test(NAME ${name}
           COMMAND ${DECENT_MPIEXEC} ${DECENT_MPIEXEC_FLAGS} -n ${np} $<TARGET_FILE:${target}> ${ARGN})
  set_tests_properties(${name} PROPERTIES TIMEOUT 300 LABELS mpi PROCESSORS 2)
endfunction()
