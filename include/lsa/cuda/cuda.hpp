// Umbrella header of the CUDA backend (link lsa::cuda); compiles without CUDA headers.
#pragma once

#include "lsa/cuda/cuda_error.hpp"
#include "lsa/cuda/chunk_selection.hpp"
#include "lsa/cuda/cuda_store.hpp"
#include "lsa/cuda/device_lightning_scorer.hpp"
#include "lsa/cuda/device_page_table.hpp"
#include "lsa/cuda/level2.hpp"
#include "lsa/cuda/lightning.hpp"
#include "lsa/cuda/page_selection.hpp"
#include "lsa/cuda/page_stats.hpp"
#include "lsa/cuda/summary_scorers.hpp"
#include "lsa/cuda/view_builder.hpp"
