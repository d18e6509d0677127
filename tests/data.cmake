# Data layer: readers and partitioning (no LibTorch) plus the loader and models (LibTorch).
if(TARGET decent_data)
  add_executable(data_tests
    ${CMAKE_CURRENT_SOURCE_DIR}/data/dataset_test.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/data/partition_test.cpp)
  target_link_libraries(data_tests PRIVATE decent_data ZLIB::ZLIB GTest::gtest_main)
  target_compile_options(data_tests PRIVATE ${DECENT_WARNINGS})
  if(DECENT_WITH_TORCH)
    # The loader and model sources are compiled in directly so these tests do not depend on
    # the rest of decent_torch.
    target_sources(data_tests PRIVATE
      ${CMAKE_CURRENT_SOURCE_DIR}/data/torch_data_test.cpp
      ${PROJECT_SOURCE_DIR}/src/torch/data_loader.cpp
      ${PROJECT_SOURCE_DIR}/src/torch/models.cpp)
    target_link_libraries(data_tests PRIVATE ${TORCH_LIBRARIES})
  endif()
  gtest_discover_tests(data_tests DISCOVERY_TIMEOUT 60 PROPERTIES LABELS data TIMEOUT 120)

  # Prints per-rank label histograms of a partition of Fashion-MNIST (or a synthetic set).
  add_executable(data_partition_report ${CMAKE_CURRENT_SOURCE_DIR}/data/partition_report.cpp)
  target_link_libraries(data_partition_report PRIVATE decent_data)
  target_compile_options(data_partition_report PRIVATE ${DECENT_WARNINGS})
endif()

find_package(Python3 COMPONENTS Interpreter QUIET)
if(Python3_Interpreter_FOUND)
  add_test(NAME data_plot_metrics
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/data/test_plot_metrics.py
                   ${PROJECT_SOURCE_DIR}/scripts/plot_metrics.py
                   ${CMAKE_CURRENT_BINARY_DIR}/plot_metrics_out)
  # 77: matplotlib is not installed; reported as skipped.
  set_tests_properties(data_plot_metrics PROPERTIES LABELS data SKIP_RETURN_CODE 77 TIMEOUT 120)
endif()
