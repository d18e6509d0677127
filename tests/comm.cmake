# Neighbour collectives and Context on both backends, from one set of cases (tests/comm/cases.cpp).
add_library(decent_comm_cases STATIC ${CMAKE_CURRENT_SOURCE_DIR}/comm/cases.cpp)
target_link_libraries(decent_comm_cases PUBLIC decent_comm GTest::gtest)

add_executable(comm_local_tests ${CMAKE_CURRENT_SOURCE_DIR}/comm/local_ops_test.cpp)
target_link_libraries(comm_local_tests PRIVATE decent_comm_cases GTest::gtest_main)
gtest_discover_tests(comm_local_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 120 LABELS local)

add_executable(comm_mpi_tests ${CMAKE_CURRENT_SOURCE_DIR}/comm/mpi_ops_test.cpp)
target_include_directories(comm_mpi_tests PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(comm_mpi_tests PRIVATE decent_comm_cases MPI::MPI_CXX)
foreach(np 1 2 3 4 5 8)
  decent_add_mpi_test(comm_mpi_np${np} comm_mpi_tests ${np})
endforeach()

# Timeline "wait" events of callers blocked in Handle::wait (local backend).
add_executable(comm_timeline_tests ${CMAKE_CURRENT_SOURCE_DIR}/comm/timeline_test.cpp)
target_link_libraries(comm_timeline_tests PRIVATE decent_comm nlohmann_json::nlohmann_json
                      GTest::gtest_main)
gtest_discover_tests(comm_timeline_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 120 LABELS local)
