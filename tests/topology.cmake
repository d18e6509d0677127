# Topology layer tests (pure C++, no MPI): one GoogleTest executable, plus decent-topo checks.
file(GLOB DECENT_TOPOLOGY_TEST_SRC CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/topology/*.cpp)
add_executable(topology_tests ${DECENT_TOPOLOGY_TEST_SRC})
target_link_libraries(topology_tests PRIVATE decent_topology GTest::gtest_main Threads::Threads
                                             nlohmann_json::nlohmann_json)
target_compile_options(topology_tests PRIVATE ${DECENT_WARNINGS})
# Two translation units of four sources each: gtest and Eigen are parsed twice, not eight times,
# and the two still build in parallel.
set_target_properties(topology_tests PROPERTIES UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE 4)
# The CLI tests run the built decent-topo.
target_compile_definitions(topology_tests PRIVATE DECENT_TOPO_EXE="$<TARGET_FILE:decent-topo>")
add_dependencies(topology_tests decent-topo)
gtest_discover_tests(topology_tests DISCOVERY_TIMEOUT 60 PROPERTIES LABELS topology TIMEOUT 60)

add_test(NAME decent_topo_list COMMAND decent-topo --list)
set_tests_properties(decent_topo_list PROPERTIES LABELS topology
                     PASS_REGULAR_EXPRESSION "one-peer-exponential +dynamic")
add_test(NAME decent_topo_unknown_topology COMMAND decent-topo no-such-topology -n 4)
set_tests_properties(decent_topo_unknown_topology PROPERTIES LABELS topology WILL_FAIL TRUE)
