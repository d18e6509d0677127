# decent-cluster (tools/decent-cluster.sh): real network namespaces, a bridge and tc rate limits,
# with MPI programs launched across them. Needs root, iproute2 and Open MPI; skipped otherwise
# (exit 77). Each case uses its own random cluster name and removes what is left of it on exit.
foreach(_case refusals up-down run run-failure run-signal foreign-names)
  add_test(NAME cluster_${_case}
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cluster/cluster_test.sh ${_case}
                   ${CMAKE_BINARY_DIR}/bin/decent-cluster $<TARGET_FILE:decentrun>
                   $<TARGET_FILE:average_consensus>)
  set_tests_properties(cluster_${_case} PROPERTIES
    TIMEOUT 60 SKIP_RETURN_CODE 77 LABELS "cluster;mpi" PROCESSORS 2)
endforeach()
