# Asynchronous optimizers (AD-PSGD, window gossip) on both backends, from one set of cases.
if(DECENT_WITH_TORCH AND TARGET decent_torch)
  add_library(decent_async_cases STATIC ${CMAKE_CURRENT_SOURCE_DIR}/optim_async/async_cases.cpp)
  target_link_libraries(decent_async_cases PUBLIC decent_torch GTest::gtest)
  target_compile_options(decent_async_cases PRIVATE ${DECENT_WARNINGS})
  decent_use_torch_pch(decent_async_cases)

  add_executable(optim_async_local_tests ${CMAKE_CURRENT_SOURCE_DIR}/optim_async/local_async_test.cpp)
  target_link_libraries(optim_async_local_tests PRIVATE decent_async_cases GTest::gtest_main)
  target_compile_options(optim_async_local_tests PRIVATE ${DECENT_WARNINGS})
  decent_use_torch_pch(optim_async_local_tests)
  # One ctest entry: each process start loads LibTorch.
  add_test(NAME optim_async.local COMMAND optim_async_local_tests)
  set_tests_properties(optim_async.local PROPERTIES LABELS "optim;torch" TIMEOUT 300
                       FAIL_REGULAR_EXPRESSION "Running 0 tests")

  add_executable(optim_async_mpi_tests ${CMAKE_CURRENT_SOURCE_DIR}/optim_async/mpi_async_test.cpp)
  target_include_directories(optim_async_mpi_tests PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(optim_async_mpi_tests PRIVATE decent_async_cases MPI::MPI_CXX)
  target_compile_options(optim_async_mpi_tests PRIVATE ${DECENT_WARNINGS})
  decent_use_torch_pch(optim_async_mpi_tests)
  foreach(np 2 4)
    decent_add_mpi_test(optim_async_mpi_np${np} optim_async_mpi_tests ${np})
  endforeach()
endif()
