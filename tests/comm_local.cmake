# The in-process transport on its own: its sources are compiled in directly so that these tests
# do not depend on the rest of the comm layer.

add_executable(local_transport_tests
  ${CMAKE_CURRENT_LIST_DIR}/comm_local/local_transport_test.cpp
  ${PROJECT_SOURCE_DIR}/src/comm/local/local_transport.cpp
  ${PROJECT_SOURCE_DIR}/src/comm/local/local_window.cpp
  ${PROJECT_SOURCE_DIR}/src/comm/types.cpp)
target_include_directories(local_transport_tests PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(local_transport_tests PRIVATE decent_topology Eigen3::Eigen GTest::gtest_main
                                                    Threads::Threads)
target_compile_options(local_transport_tests PRIVATE ${DECENT_WARNINGS})
gtest_discover_tests(local_transport_tests DISCOVERY_TIMEOUT 60
                     PROPERTIES TIMEOUT 60 LABELS "local")

# decent::local::run needs the Context, so this one links the whole comm layer.
add_executable(local_run_tests ${CMAKE_CURRENT_LIST_DIR}/comm_local/local_run_test.cpp)
target_link_libraries(local_run_tests PRIVATE decent_comm GTest::gtest_main)
target_compile_options(local_run_tests PRIVATE ${DECENT_WARNINGS})
gtest_discover_tests(local_run_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 60 LABELS "local")

# The element-wise kernels (comm/kernels.h) on their own.
add_executable(comm_kernels_tests ${CMAKE_CURRENT_LIST_DIR}/comm/kernels_test.cpp)
target_include_directories(comm_kernels_tests PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(comm_kernels_tests PRIVATE decent_comm GTest::gtest_main)
# -ffp-contract=off: the scalar references must round every operation, as the kernels do.
target_compile_options(comm_kernels_tests PRIVATE ${DECENT_WARNINGS} -ffp-contract=off)
gtest_discover_tests(comm_kernels_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 60 LABELS "local")

# DECENT_KERNELS picks the kernels' instruction set for the whole process: a supported name runs,
# an unsupported one fails the context on every rank, naming the rank and the choices. (Label
# "kernels", not "local": the sanitizer builds run the local tests without the examples.)
if(TARGET average_consensus)
  add_test(NAME kernels.env_baseline COMMAND average_consensus --local 3)
  set_tests_properties(kernels.env_baseline PROPERTIES ENVIRONMENT DECENT_KERNELS=baseline
                       PASS_REGULAR_EXPRESSION "-> converged" TIMEOUT 60 LABELS "kernels")
  add_test(NAME kernels.env_unknown COMMAND average_consensus --local 3)
  set_tests_properties(kernels.env_unknown PROPERTIES ENVIRONMENT DECENT_KERNELS=sse9
                       PASS_REGULAR_EXPRESSION
                       "rank [0-9]+: DECENT_KERNELS=sse9: this CPU and build support baseline"
                       TIMEOUT 60 LABELS "kernels")
endif()
