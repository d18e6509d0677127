// Validation of graphs and schedules: catches what would make partial averaging silently wrong
// (bad ranks, negative or NaN weights, rows not summing to 1, disconnected graphs).
//
//   ValidationReport r = check(graph);          // collects every problem
//   validate(graph);                            // throws ValidationError on the first report
#pragma once

#include "decent/topology/errors.h"
#include "decent/topology/graph.h"
#include "decent/topology/schedule.h"

#include <cstdint>
#include <string>
#include <vector>

namespace decent::topology {

// What to do with a property that may legitimately be missing.
enum class Check {
  kIgnore,   // do not check
  kWarn,     // report in ValidationReport::warnings
  kRequire,  // report in ValidationReport::errors
};

struct ValidationOptions {
  // Absolute tolerance on row and column sums.
  double tolerance = 1e-9;
  // Columns summing to 1 (W doubly stochastic): what exact-average algorithms need; directed
  // graphs with push-sum style algorithms do without.
  Check doubly_stochastic = Check::kWarn;
  // Strong connectivity (for schedules: of the union of the checked steps). Without it the
  // nodes never agree.
  Check connected = Check::kRequire;
};

struct ValidationReport {
  std::vector<std::string> errors;  // each message names the node or rank at fault
  std::vector<std::string> warnings;
  bool ok() const { return errors.empty(); }
  // All errors (and warnings) as one message.
  std::string summary() const;
};

class ValidationError : public TopologyError {
 public:
  explicit ValidationError(ValidationReport report);
  const ValidationReport& report() const { return report_; }

 private:
  ValidationReport report_;
};

// Checks a graph: weights finite and non-negative, rows summing to 1, doubly stochastic and
// connected as the options ask.
ValidationReport check(const Graph& graph, const ValidationOptions& options = {});
// check() and throw ValidationError when there are errors; returns the report (warnings).
ValidationReport validate(const Graph& graph, const ValidationOptions& options = {});

// Checks one rank's plan in a world of n ranks: peers in range, no self messages, no duplicates,
// finite non-negative weights, self + received weights summing to 1.
ValidationReport check_plan(const StepPlan& plan, int rank, int n, std::int64_t step,
                            const ValidationOptions& options = {});

// Checks steps [0, steps) of a schedule (steps = 0: one period, or 1 if aperiodic): every
// step's graph and every rank's plan, that plans agree with graph_at (a sends to b exactly when
// b receives from a, with the same weight), and connectivity of the union of the steps.
ValidationReport check(const Schedule& schedule, int steps = 0,
                       const ValidationOptions& options = {});
ValidationReport validate(const Schedule& schedule, int steps = 0,
                          const ValidationOptions& options = {});

}  // namespace decent::topology
