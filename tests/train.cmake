# decent-train: unit tests of its parts, command-line tests that run the binary (usage errors,
# short synthetic runs, resume), and one multi-process MPI run.
if(TARGET decent-train)
  set(_train_test_dir ${CMAKE_CURRENT_BINARY_DIR}/train_test_out)

  add_executable(train_unit_tests ${CMAKE_CURRENT_SOURCE_DIR}/train/train_unit_test.cpp)
  target_link_libraries(train_unit_tests PRIVATE decent_train_core GTest::gtest_main)
  target_compile_definitions(train_unit_tests PRIVATE DECENT_TRAIN_TEST_DIR="${_train_test_dir}")
  target_compile_options(train_unit_tests PRIVATE ${DECENT_WARNINGS})
  decent_use_torch_pch(train_unit_tests)
  # One process for all of them: each start loads LibTorch (about a second).
  add_test(NAME train.unit COMMAND train_unit_tests)
  set_tests_properties(train.unit PROPERTIES TIMEOUT 120)

  add_executable(train_cli_tests ${CMAKE_CURRENT_SOURCE_DIR}/train/train_cli_test.cpp)
  target_link_libraries(train_cli_tests PRIVATE nlohmann_json::nlohmann_json GTest::gtest_main)
  target_compile_definitions(train_cli_tests PRIVATE
                             DECENT_TRAIN_EXE="$<TARGET_FILE:decent-train>"
                             DECENT_TRAIN_TEST_DIR="${_train_test_dir}")
  target_compile_options(train_cli_tests PRIVATE ${DECENT_WARNINGS})
  add_dependencies(train_cli_tests decent-train)
  # Each ctest entry runs one group of tests; the runs use 3 ranks on the 2 cores.
  foreach(_group "usage_names:TrainCliTest.UnknownNamesListTheValidOnes"
                 "usage_values:TrainCliTest.OutOfRangeValuesAreUsageErrors"
                 "usage_data:TrainCliTest.MissingDataDirNamesThePackage"
                 "usage_resume:TrainCliTest.ResumeNeedsACheckpoint"
                 "usage_lists:TrainCliTest.ListsAlgorithmsAndTopologies"
                 "learn_dmsgd:TrainRunTest.DmsgdOnRingLearns"
                 "learn_decentlam:TrainRunTest.DecentLamOnOnePeerExponentialLearns"
                 "learn_pmsgd:TrainRunTest.PmsgdLearnsAndKeepsRanksIdentical"
                 "learn_qg_dmsgd:TrainRunTest.QgDmsgdOnRingLearns"
                 "learn_adpsgd_bytes:TrainRunTest.AdPsgdReportsItsWindowTraffic"
                 "diverge:TrainRunTest.DivergenceStopsTheRun"
                 "straggler:TrainRunTest.StragglerSlowsASynchronousRun"
                 "resume_dmsgd:TrainResumeTest.DmsgdRingThreeEpochsEqualsTwoPlusResume"
                 "resume_awc_dynamic:TrainResumeTest.OverlappedDynamicCosineRunResumesExactly"
                 "resume_fallback:TrainResumeTest.FallsBackToTheNewestEpochEveryRankHas"
                 "resume_mismatch:TrainResumeTest.ResumeWithOtherOptionsIsRefused")
    string(FIND "${_group}" ":" _colon)
    string(SUBSTRING "${_group}" 0 ${_colon} _name)
    math(EXPR _colon "${_colon} + 1")
    string(SUBSTRING "${_group}" ${_colon} -1 _filter)
    add_test(NAME train.${_name} COMMAND train_cli_tests --gtest_filter=${_filter})
    # A filter that matches nothing (a renamed test) must fail rather than pass silently.
    set_tests_properties(train.${_name} PROPERTIES TIMEOUT 120 PROCESSORS 2
                         FAIL_REGULAR_EXPRESSION "Running 0 tests")
  endforeach()

  # Two MPI processes, one rank each, on the synthetic dataset; then its metrics file is checked.
  decent_add_mpi_test(train.mpi_synthetic decent-train 2
                      --algorithm dmsgd --topology ring --dataset synthetic
                      --synthetic-samples 2000 --model mlp --batch-size 32 --epochs 2 --seed 7
                      --metrics ${_train_test_dir}/mpi/metrics.json)
  set_tests_properties(train.mpi_synthetic PROPERTIES FIXTURES_SETUP train_mpi_run)
  add_test(NAME train.mpi_metrics
           COMMAND train_cli_tests --gtest_filter=TrainMpiTest.*)
  set_tests_properties(train.mpi_metrics PROPERTIES FIXTURES_REQUIRED train_mpi_run
                       FAIL_REGULAR_EXPRESSION "Running 0 tests" LABELS mpi)
endif()
