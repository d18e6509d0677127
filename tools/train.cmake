# decent-train: the training command. Its parts (options, data, loop, checkpoints, metrics) form
# a small library so that the tests can exercise them directly.
if(TARGET decent_torch AND TARGET decent_data)
  add_library(decent_train_core STATIC
              ${CMAKE_CURRENT_LIST_DIR}/train_options.cpp
              ${CMAKE_CURRENT_LIST_DIR}/train_metrics.cpp
              ${CMAKE_CURRENT_LIST_DIR}/train_data.cpp
              ${CMAKE_CURRENT_LIST_DIR}/train_checkpoint.cpp
              ${CMAKE_CURRENT_LIST_DIR}/train_loop.cpp)
  target_include_directories(decent_train_core PUBLIC ${CMAKE_CURRENT_LIST_DIR})
  target_link_libraries(decent_train_core PUBLIC decent_torch decent_data decent_topology
                                                 nlohmann_json::nlohmann_json fmt::fmt
                                          PRIVATE CLI11::CLI11)
  target_compile_options(decent_train_core PRIVATE ${DECENT_WARNINGS})
  decent_use_torch_pch(decent_train_core SKIP ${CMAKE_CURRENT_LIST_DIR}/train_options.cpp
                                               ${CMAKE_CURRENT_LIST_DIR}/train_metrics.cpp)
  # The three LibTorch sources as one translation unit: they instantiate the same LibTorch
  # templates, once instead of three times.
  set_target_properties(decent_train_core PROPERTIES UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE 0)
  set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/train_options.cpp
                              ${CMAKE_CURRENT_LIST_DIR}/train_metrics.cpp
                              PROPERTIES SKIP_UNITY_BUILD_INCLUSION ON)

  add_executable(decent-train ${CMAKE_CURRENT_LIST_DIR}/decent_train.cpp)
  target_link_libraries(decent-train PRIVATE decent_train_core)
  target_compile_options(decent-train PRIVATE ${DECENT_WARNINGS})
  decent_use_torch_pch(decent-train)
endif()
