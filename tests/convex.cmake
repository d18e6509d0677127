# Convex research suite: problems, solvers, the bias facts of ALGORITHMS.md, experiment files and
# decent-bench-convex (local backend), the MPI backend, and the plot script.
add_executable(convex_tests
  ${CMAKE_CURRENT_LIST_DIR}/convex/problem_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/convex/solver_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/convex/bias_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/convex/experiment_test.cpp)
target_link_libraries(convex_tests PRIVATE decent_convex GTest::gtest_main
                                           nlohmann_json::nlohmann_json)
target_compile_options(convex_tests PRIVATE ${DECENT_WARNINGS})
# Two translation units of two sources each (gtest and Eigen parsed twice, not four times).
set_target_properties(convex_tests PROPERTIES UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE 2)
target_compile_definitions(convex_tests PRIVATE
                           DECENT_BENCH_CONVEX_EXE="$<TARGET_FILE:decent-bench-convex>")
add_dependencies(convex_tests decent-bench-convex)
gtest_discover_tests(convex_tests DISCOVERY_TIMEOUT 60 PROPERTIES LABELS convex TIMEOUT 120)

add_executable(convex_mpi_tests ${CMAKE_CURRENT_LIST_DIR}/convex/mpi_test.cpp)
target_link_libraries(convex_mpi_tests PRIVATE decent_convex GTest::gtest)
target_compile_options(convex_mpi_tests PRIVATE ${DECENT_WARNINGS})
decent_add_mpi_test(convex_mpi_np4 convex_mpi_tests 4)
set_property(TEST convex_mpi_np4 APPEND PROPERTY LABELS convex)

# The command under mpirun: every process one rank, rank 0 writes the files.
add_test(NAME convex_cli_mpi_np3
         COMMAND ${DECENT_MPIEXEC} ${DECENT_MPIEXEC_FLAGS} -n 3 $<TARGET_FILE:decent-bench-convex>
                 -a gradient-tracking -t ring --iterations 800 --no-plot
                 --out ${CMAKE_CURRENT_BINARY_DIR}/convex_cli_mpi/gt)
set_tests_properties(convex_cli_mpi_np3 PROPERTIES LABELS "convex;mpi" TIMEOUT 120 PROCESSORS 2
                     PASS_REGULAR_EXPRESSION "\\| gradient-tracking \\| ring \\| 3 \\|[^\n]*e-(2|3)[0-9]")

find_program(DECENT_CONVEX_TEST_PYTHON3 python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT DECENT_CONVEX_TEST_PYTHON3)
  find_program(DECENT_CONVEX_TEST_PYTHON3 python3)
endif()
if(DECENT_CONVEX_TEST_PYTHON3)
  add_test(NAME convex_plot_script
           COMMAND ${DECENT_CONVEX_TEST_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/convex/test_plot_convex.py
                   ${PROJECT_SOURCE_DIR}/scripts/plot_convex.py
                   ${CMAKE_CURRENT_BINARY_DIR}/convex_plot_out)
  # 77: matplotlib is not installed; reported as skipped.
  set_tests_properties(convex_plot_script PROPERTIES LABELS convex SKIP_RETURN_CODE 77 TIMEOUT 60)
endif()

# The bias-corrected LibTorch optimizers against the Eigen solvers, and their checkpoints. One
# ctest entry: every process start loads LibTorch.
if(DECENT_WITH_TORCH AND TARGET decent_torch)
  add_executable(convex_torch_tests ${CMAKE_CURRENT_LIST_DIR}/convex/torch_bias_corrected_test.cpp)
  target_link_libraries(convex_torch_tests PRIVATE decent_torch decent_convex GTest::gtest_main)
  target_compile_options(convex_torch_tests PRIVATE ${DECENT_WARNINGS})
  decent_use_torch_pch(convex_torch_tests)
  add_test(NAME convex_torch_optimizers COMMAND convex_torch_tests)
  set_tests_properties(convex_torch_optimizers PROPERTIES LABELS "convex;torch" TIMEOUT 120
                       FAIL_REGULAR_EXPRESSION "Running 0 tests")
endif()
