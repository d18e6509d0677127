# Compressed optimizers (C-SGD, DoubleSqueeze, DCD-PSGD, DeepSqueeze, CHOCO-SGD) on the
# in-process backend: reductions, stacked formulas, convergence, resume, bytes, options.
if(DECENT_WITH_TORCH AND TARGET decent_torch)
  add_executable(optim_compressed_tests
    ${CMAKE_CURRENT_SOURCE_DIR}/optim_compressed/compressed_test.cpp)
  target_link_libraries(optim_compressed_tests PRIVATE decent_torch decent_topology GTest::gtest)
  target_compile_options(optim_compressed_tests PRIVATE ${DECENT_WARNINGS})
  decent_use_torch_pch(optim_compressed_tests)
  # One process per group: each start loads LibTorch.
  set(_optim_compressed_groups
      "formula:Algorithms/ReducesToUncompressed.*:Algorithms/MatchesStackedFormula.*"
      "resume:Algorithms/Resume.*:Checkpoint.*"
      "convergence:Convergence.*:Bytes.*:Options.*")
  foreach(_group ${_optim_compressed_groups})
    string(FIND "${_group}" ":" _colon)
    string(SUBSTRING "${_group}" 0 ${_colon} _name)
    math(EXPR _colon "${_colon} + 1")
    string(SUBSTRING "${_group}" ${_colon} -1 _filter)
    add_test(NAME optim_compressed.${_name} COMMAND optim_compressed_tests --gtest_filter=${_filter})
    set_tests_properties(optim_compressed.${_name} PROPERTIES LABELS "optim;torch;compress"
                         TIMEOUT 120 FAIL_REGULAR_EXPRESSION "Running 0 tests")
  endforeach()
endif()
