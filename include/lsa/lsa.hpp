// Umbrella header: everything an engine needs to use lsa with the host backend.
#pragma once

#include "lsa/cache_config.hpp"
#include "lsa/chunker.hpp"
#include "lsa/error.hpp"
#include "lsa/fp8.hpp"
#include "lsa/host_store.hpp"
#include "lsa/level2.hpp"
#include "lsa/lookahead_policy.hpp"
#include "lsa/scorer_concept.hpp"
#include "lsa/scorers.hpp"
#include "lsa/sparse_kv_cache.hpp"
#include "lsa/stats.hpp"
#include "lsa/status.hpp"
#include "lsa/store_concept.hpp"
#include "lsa/types.hpp"
#include "lsa/view.hpp"
