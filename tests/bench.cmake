# The benchmarks, run tiny so that they keep building and running (their own result checks
# included) without timing anything worth reading. Real runs: docs/benchmarks.md.
if(DECENT_BUILD_BENCH)
  set(_bench_test_dir ${CMAKE_CURRENT_BINARY_DIR}/bench_test_out)
  file(MAKE_DIRECTORY ${_bench_test_dir})

  # Every operation (the raw MPI ones and each forced allreduce algorithm included) at sizes in
  # each algorithm's default range at 3 ranks, on 2 emulated machines of 2 and 1 ranks; each
  # result is checked against the mixing matrix before it is timed (verification is on by
  # default), so a wrong answer fails the test.
  decent_add_mpi_test(bench.comm decent-bench-comm 3
                      --sizes 4K,128K,300K,2M --reps 2 --warmup 1 --large-from 1M --large-reps 1
                      --large-warmup 0 --ranks-per-machine 2
                      --ops mpi-allreduce,mpi-one-peer,mpi-exponential,mpi-ring,mpi-iallreduce,mpi-iallreduce-poll,mpi-iallreduce-copy,mpi-one-peer-poll,mpi-one-peer-yield,allreduce-ring,allreduce-rabenseifner,allreduce-transport,allreduce-rd,allreduce-halving,allreduce,one-peer,exponential,ring,hierarchical,allreduce-nocheck,one-peer-nocheck,exponential-nocheck,ring-nocheck,hierarchical-nocheck
                      --csv ${_bench_test_dir}/comm.csv)
  decent_add_mpi_test(bench.fusion decent-bench-fusion 2
                      --total 1M --tensors 20 --reps 2 --warmup 1
                      --csv ${_bench_test_dir}/fusion.csv)
  decent_add_mpi_test(bench.mpi_receive decent-bench-mpi-receive 2 --sizes 2048,4224 --reps 20)
  set_tests_properties(bench.comm bench.fusion bench.mpi_receive PROPERTIES LABELS "mpi;bench")
  if(TARGET decent-bench-codec)
    add_test(NAME bench.codec COMMAND decent-bench-codec --benchmark_min_time=0.001
                                      --benchmark_filter=/1048576/)
    set_tests_properties(bench.codec PROPERTIES TIMEOUT 300 LABELS bench
                         FAIL_REGULAR_EXPRESSION "Failed to match any benchmarks")
  endif()
  if(TARGET decent-bench-kernels)
    add_test(NAME bench.kernels COMMAND decent-bench-kernels --benchmark_min_time=0.001
                                        --benchmark_filter=/65536)
    set_tests_properties(bench.kernels PROPERTIES TIMEOUT 120 LABELS bench
                         FAIL_REGULAR_EXPRESSION "Failed to match any benchmarks")
  endif()
endif()
