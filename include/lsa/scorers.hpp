// All index scorers: lightning (trained indexer), bound (Quest), centroid and embedding.
#pragma once

#include "lsa/scorers/bound_scorer.hpp"
#include "lsa/scorers/centroid_scorer.hpp"
#include "lsa/scorers/embedding_scorer.hpp"
#include "lsa/scorers/lightning_scorer.hpp"
