# One-sided windows on both backends, from one set of cases (tests/comm_window/window_cases.cpp).
add_library(decent_window_cases STATIC ${CMAKE_CURRENT_SOURCE_DIR}/comm_window/window_cases.cpp)
target_link_libraries(decent_window_cases PUBLIC decent_comm GTest::gtest)
target_compile_options(decent_window_cases PRIVATE ${DECENT_WARNINGS})

add_executable(comm_window_local_tests ${CMAKE_CURRENT_SOURCE_DIR}/comm_window/local_window_test.cpp)
target_link_libraries(comm_window_local_tests PRIVATE decent_window_cases GTest::gtest_main)
target_compile_options(comm_window_local_tests PRIVATE ${DECENT_WARNINGS})
gtest_discover_tests(comm_window_local_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 120 LABELS local)

add_executable(comm_window_mpi_tests ${CMAKE_CURRENT_SOURCE_DIR}/comm_window/mpi_window_test.cpp)
target_include_directories(comm_window_mpi_tests PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(comm_window_mpi_tests PRIVATE decent_window_cases MPI::MPI_CXX)
target_compile_options(comm_window_mpi_tests PRIVATE ${DECENT_WARNINGS})
foreach(np 1 2 3 4 5 8)
  decent_add_mpi_test(comm_window_mpi_np${np} comm_window_mpi_tests ${np})
endforeach()
