# Data layer: readers and partitioning (no LibTorch) plus the loader and models (LibTorch).
if(TARGET decent_data)
  add_executable(data_tests
    ${CMAKE_CURRENT_SOURCE_DIR}/data/dataset_test.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/data/partition_test.cpp)
  target_link_libraries(data_tests PRIVATE decent_data ZLIB::ZLIB GTest::gtest_main)
  target_compile_options(data_tests PRIVATE ${DECENT_WARNINGS})
  if(DECENT_WITH_TORCH)
    # The loader and the models come from decent_torch, which the build compiles anyway.
    target_sources(data_tests PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/data/torch_data_test.cpp)
    target_link_libraries(data_tests PRIVATE decent_torch)
    decent_use_torch_pch(data_tests SKIP ${CMAKE_CURRENT_SOURCE_DIR}/data/dataset_test.cpp
                                         ${CMAKE_CURRENT_SOURCE_DIR}/data/partition_test.cpp)
  endif()
  # A few ctest entries rather than one per test: every process start loads LibTorch
  # (about 1 s of CPU), which would dominate the run time of these fast tests.
  set(_data_groups "io:IdxFilesTest.*:FashionMnistTest.*:SyntheticDatasetTest.*:DatasetTest.*"
                   "partition:RngTest.*:PartitionTest.*")
  if(DECENT_WITH_TORCH)
    list(APPEND _data_groups "loader:BatchLoaderTest.*" "models:ModelsTest.*")
  endif()
  foreach(_group ${_data_groups})
    string(FIND "${_group}" ":" _colon)
    string(SUBSTRING "${_group}" 0 ${_colon} _name)
    math(EXPR _colon "${_colon} + 1")
    string(SUBSTRING "${_group}" ${_colon} -1 _filter)
    add_test(NAME data.${_name} COMMAND data_tests --gtest_filter=${_filter})
    # A filter that matches nothing (a renamed suite) must not pass silently.
    set_tests_properties(data.${_name} PROPERTIES LABELS data TIMEOUT 120
                         FAIL_REGULAR_EXPRESSION "Running 0 tests")
  endforeach()

  # Prints per-rank label histograms of a partition of Fashion-MNIST (or a synthetic set).
  add_executable(data_partition_report ${CMAKE_CURRENT_SOURCE_DIR}/data/partition_report.cpp)
  target_link_libraries(data_partition_report PRIVATE decent_data)
  target_compile_options(data_partition_report PRIVATE ${DECENT_WARNINGS})
endif()

# Debian's python3-matplotlib belongs to the system interpreter: prefer it to any other
# python3 on PATH.
find_program(DECENT_SYSTEM_PYTHON3 python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT DECENT_SYSTEM_PYTHON3)
  find_program(DECENT_SYSTEM_PYTHON3 python3)
endif()
if(DECENT_SYSTEM_PYTHON3)
  add_test(NAME data_plot_metrics
           COMMAND ${DECENT_SYSTEM_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/data/test_plot_metrics.py
                   ${PROJECT_SOURCE_DIR}/scripts/plot_metrics.py
                   ${CMAKE_CURRENT_BINARY_DIR}/plot_metrics_out)
  # 77: matplotlib is not installed; reported as skipped.
  set_tests_properties(data_plot_metrics PROPERTIES LABELS data SKIP_RETURN_CODE 77 TIMEOUT 120)
endif()
