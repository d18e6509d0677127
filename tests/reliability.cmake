# Reliability: multi-process fault tests (a rank killed or stopped mid-run, a training run killed
# and resumed) and bad-input tests that complete the ones of each area. See docs/reliability.md
# and docs/errors.md. Labels: reliability_unit (fast, no MPI job; also run under ASan+UBSan by
# scripts/test-sanitizers.sh), reliability (launches MPI jobs or decent-train).
find_package(Python3 COMPONENTS Interpreter)

# Bad input to the tools and the library, without LibTorch.
add_executable(reliability_input_tests ${CMAKE_CURRENT_SOURCE_DIR}/reliability/input_errors_test.cpp)
target_link_libraries(reliability_input_tests PRIVATE decent_comm decent_data MPI::MPI_CXX
                                                      GTest::gtest_main)
target_compile_options(reliability_input_tests PRIVATE ${DECENT_WARNINGS})
target_compile_definitions(reliability_input_tests PRIVATE
                           DECENT_TOPO_EXE="$<TARGET_FILE:decent-topo>"
                           DECENTRUN_EXE="$<TARGET_FILE:decentrun>")
add_dependencies(reliability_input_tests decent-topo decentrun)
foreach(_group "topology_files:TopologyFileErrors.*" "dataset_files:DatasetFileErrors.*"
               "command_line:CommandLineErrors.*" "context:ContextErrors.*")
  string(FIND "${_group}" ":" _colon)
  string(SUBSTRING "${_group}" 0 ${_colon} _name)
  math(EXPR _colon "${_colon} + 1")
  string(SUBSTRING "${_group}" ${_colon} -1 _filter)
  add_test(NAME reliability.${_name} COMMAND reliability_input_tests --gtest_filter=${_filter})
  set_tests_properties(reliability.${_name} PROPERTIES LABELS reliability_unit TIMEOUT 120
                       FAIL_REGULAR_EXPRESSION "Running 0 tests")
endforeach()
# Initialises and finalises MPI in the test process, so it runs alone in its own process.
add_test(NAME reliability.after_mpi_finalize
         COMMAND reliability_input_tests --gtest_filter=AfterShutdown.MpiContextAfterFinalizeIsRefused)
set_tests_properties(reliability.after_mpi_finalize PROPERTIES LABELS reliability TIMEOUT 120
                     FAIL_REGULAR_EXPRESSION "Running 0 tests")

# Tensors the LibTorch adapter refuses.
if(TARGET decent_torch)
  add_executable(reliability_tensor_tests
                 ${CMAKE_CURRENT_SOURCE_DIR}/reliability/tensor_errors_test.cpp)
  target_link_libraries(reliability_tensor_tests PRIVATE decent_torch GTest::gtest_main)
  target_compile_options(reliability_tensor_tests PRIVATE ${DECENT_WARNINGS})
  decent_use_torch_pch(reliability_tensor_tests)
  add_test(NAME reliability.tensors COMMAND reliability_tensor_tests)
  set_tests_properties(reliability.tensors PROPERTIES LABELS "reliability;torch" TIMEOUT 120
                       FAIL_REGULAR_EXPRESSION "Running 0 tests")
endif()

# A decentralized averaging loop for the fault tests.
add_executable(fault_loop ${CMAKE_CURRENT_SOURCE_DIR}/reliability/fault_loop.cpp)
target_link_libraries(fault_loop PRIVATE decent_comm decent_topology)
target_compile_options(fault_loop PRIVATE ${DECENT_WARNINGS})

if(Python3_Interpreter_FOUND)
  # Each fault test launches its own MPI job through decentrun. RUN_SERIAL: their time bounds
  # assume the two cores are not shared with other jobs of the test run.
  set(_faults ${CMAKE_CURRENT_SOURCE_DIR}/reliability/faults.py)
  foreach(_case sigkill sigstop)
    add_test(NAME reliability.fault_${_case} COMMAND ${Python3_EXECUTABLE} ${_faults} ${_case})
    set_tests_properties(reliability.fault_${_case} PROPERTIES
                         ENVIRONMENT "DECENTRUN=$<TARGET_FILE:decentrun>;FAULT_LOOP=$<TARGET_FILE:fault_loop>"
                         TIMEOUT 180 LABELS "mpi;reliability" RUN_SERIAL TRUE)
  endforeach()

  if(TARGET decent-train)
    set(_train_faults ${CMAKE_CURRENT_SOURCE_DIR}/reliability/train_faults.py)
    set(_train_env "DECENTRUN=$<TARGET_FILE:decentrun>;DECENT_TRAIN=$<TARGET_FILE:decent-train>"
                   "WORKDIR=${CMAKE_CURRENT_BINARY_DIR}/reliability_out")
    add_test(NAME reliability.train_kill_resume
             COMMAND ${Python3_EXECUTABLE} ${_train_faults} kill_resume)
    set_tests_properties(reliability.train_kill_resume PROPERTIES ENVIRONMENT "${_train_env}"
                         TIMEOUT 600 LABELS "mpi;reliability" RUN_SERIAL TRUE)
    add_test(NAME reliability.train_bad_dataset
             COMMAND ${Python3_EXECUTABLE} ${_train_faults} bad_dataset)
    set_tests_properties(reliability.train_bad_dataset PROPERTIES ENVIRONMENT "${_train_env}"
                         TIMEOUT 300 LABELS reliability PROCESSORS 2)
  endif()
endif()
