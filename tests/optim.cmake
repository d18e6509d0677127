# Decentralized optimizers (layer 4): every algorithm against its formula on the in-process
# backend, equivalences, push-sum invariants, checkpoint/resume, convergence, options.
if(DECENT_WITH_TORCH AND TARGET decent_torch)
  add_executable(optim_tests
    ${CMAKE_CURRENT_SOURCE_DIR}/optim/optim_test.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/optim/reference.cpp)
  target_link_libraries(optim_tests PRIVATE decent_torch decent_topology GTest::gtest)
  target_compile_options(optim_tests PRIVATE ${DECENT_WARNINGS})
  decent_use_torch_pch(optim_tests SKIP ${CMAKE_CURRENT_SOURCE_DIR}/optim/reference.cpp)
  # A few ctest entries rather than one per test: each process start loads LibTorch.
  set(_optim_groups
      "formula:Algorithms/MatchesFormula.*:Formula.*:Equivalence.*"
      "push_sum:PushSum.*:LocalSGD.*"
      "resume:Algorithms/Resume.*:Checkpoint.*"
      "convergence:Algorithms/DecreasesLoss.*:Convergence.*"
      "options:Factory.*:Options.*")
  foreach(_group ${_optim_groups})
    string(FIND "${_group}" ":" _colon)
    string(SUBSTRING "${_group}" 0 ${_colon} _name)
    math(EXPR _colon "${_colon} + 1")
    string(SUBSTRING "${_group}" ${_colon} -1 _filter)
    add_test(NAME optim.${_name} COMMAND optim_tests --gtest_filter=${_filter})
    set_tests_properties(optim.${_name} PROPERTIES LABELS "optim;torch" TIMEOUT 120
                         FAIL_REGULAR_EXPRESSION "Running 0 tests")
  endforeach()
endif()
