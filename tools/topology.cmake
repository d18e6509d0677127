# decent-topo: inspect a topology (degrees, rho, per-iteration messages), export DOT/PNG/JSON.
add_executable(decent-topo ${CMAKE_CURRENT_LIST_DIR}/decent_topo.cpp)
target_link_libraries(decent-topo PRIVATE decent_topology CLI11::CLI11 nlohmann_json::nlohmann_json
                                          fmt::fmt)
target_compile_options(decent-topo PRIVATE ${DECENT_WARNINGS})
