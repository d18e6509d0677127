# decent-cluster: the emulated-cluster tool (a bash script, docs/cluster.md), copied to bin/ next
# to decentrun, which `decent-cluster run` launches programs with.
set(DECENT_CLUSTER_SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/decent-cluster.sh)
set(DECENT_CLUSTER_BIN ${CMAKE_RUNTIME_OUTPUT_DIRECTORY}/decent-cluster)
add_custom_command(
  OUTPUT ${DECENT_CLUSTER_BIN}
  COMMAND ${CMAKE_COMMAND} -E copy ${DECENT_CLUSTER_SCRIPT} ${DECENT_CLUSTER_BIN}
  COMMAND chmod 755 ${DECENT_CLUSTER_BIN}
  DEPENDS ${DECENT_CLUSTER_SCRIPT}
  COMMENT "Copying decent-cluster to bin/")
add_custom_target(decent-cluster ALL DEPENDS ${DECENT_CLUSTER_BIN})
add_dependencies(decent-cluster decentrun)
