# Ring allreduce on both backends (tests/comm/ring_cases.cpp), polling policy, timeline names.
add_library(decent_comm_ring_cases STATIC ${CMAKE_CURRENT_SOURCE_DIR}/comm/ring_cases.cpp)
target_link_libraries(decent_comm_ring_cases PUBLIC decent_comm GTest::gtest)
target_compile_options(decent_comm_ring_cases PRIVATE ${DECENT_WARNINGS})

add_executable(comm_ring_local_tests ${CMAKE_CURRENT_SOURCE_DIR}/comm/ring_local_test.cpp)
target_include_directories(comm_ring_local_tests PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(comm_ring_local_tests PRIVATE decent_comm_ring_cases GTest::gtest_main)
target_compile_options(comm_ring_local_tests PRIVATE ${DECENT_WARNINGS})
gtest_discover_tests(comm_ring_local_tests TEST_PREFIX comm_ring_local. DISCOVERY_TIMEOUT 60
                     PROPERTIES TIMEOUT 120 LABELS local)

add_executable(comm_ring_mpi_tests ${CMAKE_CURRENT_SOURCE_DIR}/comm/ring_mpi_test.cpp)
target_include_directories(comm_ring_mpi_tests PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(comm_ring_mpi_tests PRIVATE decent_comm_ring_cases MPI::MPI_CXX)
target_compile_options(comm_ring_mpi_tests PRIVATE ${DECENT_WARNINGS})
foreach(np 1 2 3 4 5 8)
  decent_add_mpi_test(comm_ring_mpi_np${np} comm_ring_mpi_tests ${np})
endforeach()
