// Everything of the topology layer in one include.
#pragma once

#include "decent/topology/analysis.h"
#include "decent/topology/dynamic.h"
#include "decent/topology/errors.h"
#include "decent/topology/generators.h"
#include "decent/topology/graph.h"
#include "decent/topology/io.h"
#include "decent/topology/registry.h"
#include "decent/topology/schedule.h"
#include "decent/topology/validate.h"
#include "decent/topology/weights.h"
