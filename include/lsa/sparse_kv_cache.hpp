// SparseKVCache: the engine-facing object. Sequences, appends, per-step views, refreshes.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "lsa/cache_config.hpp"
#include "lsa/chunker.hpp"
#include "lsa/detail/recall_worker.hpp"
#include "lsa/error.hpp"
#include "lsa/host_store.hpp"
#include "lsa/lookahead_policy.hpp"
#include "lsa/scorer_concept.hpp"
#include "lsa/scorers/lightning_scorer.hpp"
#include "lsa/stats.hpp"
#include "lsa/status.hpp"
#include "lsa/store_concept.hpp"
#include "lsa/types.hpp"
#include "lsa/view.hpp"

namespace lsa {

/// Sparse KV cache over a chunker, an index scorer, a lookahead policy and a KV store.
///
/// Threading: one engine thread calls the cache; in RecallMode::kAsync recalled pages are copied
/// off that thread (HostStore: a private worker thread; cuda::CudaStore: a copy stream). Every
/// noexcept call that returns a Status other than kOk left the cache as it was
/// (docs/api-contract.md).
template <ChunkerLike ChunkerT = Chunker, IndexScorer ScorerT = LightningScorer,
          LookaheadPolicyLike PolicyT = LookaheadPolicy, KVStore StoreT = HostStore>
class SparseKVCache {
 public:
  /// Validates `config` (throws lsa::Error naming the field) and allocates reserve and mirror;
  /// `store_options` go to the store's constructor after the config (e.g. cuda::CudaStoreOptions,
  /// HostStoreOptions). Memory that cannot be had is an lsa::Error too, never std::bad_alloc.
  template <class... StoreOptions>
  explicit SparseKVCache(const CacheConfig& config, StoreOptions&&... store_options) try
      : config_(checked(config)),
        chunker_(config.chunk_tokens, config.page_chunks),
        scorer_(config.scorer, config.chunk_tokens),
        policy_(config.policy, Chunker(config.chunk_tokens, config.page_chunks)),
        store_(config, std::forward<StoreOptions>(store_options)...) {
    sequences_.reserve(static_cast<size_t>(config.max_sequences));
    batch_.reserve(static_cast<size_t>(config.max_sequences));
  } catch (const std::bad_alloc&) {
    // Valid sizes this machine cannot hold (a memory limit): as much a configuration error as an
    // invalid one, with the sizes that decide the memory.
    throw Error("the cache's memory could not be allocated for num_slots " +
                std::to_string(config.num_slots) + " (pages of " +
                std::to_string(config.page_bytes()) + " B, plus bookkeeping per slot) and " +
                "max_sequences " + std::to_string(config.max_sequences));
  }

  ~SparseKVCache() {
    for (auto& [id, seq] : sequences_) wait_pending(seq);
  }
  SparseKVCache(const SparseKVCache&) = delete;
  SparseKVCache& operator=(const SparseKVCache&) = delete;

  // ---- sequence lifecycle -------------------------------------------------------------------

  /// Starts an empty sequence.
  [[nodiscard]] Status add(SeqId id) noexcept {
    if (sequences_.contains(id)) return Status::kDuplicateSequence;
    if (static_cast<int32_t>(sequences_.size()) >= config_.max_sequences) {
      return Status::kTooManySequences;
    }
    try {
      Sequence& seq = sequences_.emplace(id, Sequence{}).first->second;
      seq.id = id;
      touch(seq);
      seq.ticket = std::make_unique<detail::RecallTicket>();
    } catch (const std::bad_alloc&) {
      sequences_.erase(id);
      return Status::kOutOfMemory;
    }
    return Status::kOk;
  }

  /// Appends `num_tokens` tokens; out[i] receives where token i's KV goes (slot, offset).
  /// `keys` holds the scorer's rows for them (one per token, or one per chunk they complete).
  /// With `kv` ([num_tokens][num_layers][bytes_per_token_per_layer]) lsa writes the KV itself;
  /// otherwise the engine writes it before its next append/commit/truncate/fork of this sequence.
  /// With `kv`, pages that do not join the resident set go straight to the mirror when the reserve
  /// is short of slots for them (their out[i].slot is -1), so a prefill of any length fits.
  [[nodiscard]] Status append(SeqId id, int32_t num_tokens, KeyRows keys, std::span<TokenSlot> out,
                              const std::byte* kv = nullptr) noexcept {
    if (Status s = store_status(); s != Status::kOk) return s;
    Sequence* seq = find(id);
    if (seq == nullptr) return Status::kUnknownSequence;
    if (num_tokens < 0) return Status::kInvalidArgument;
    if (num_tokens > config_.max_tokens - seq->num_tokens) return Status::kOutOfRange;
    if (static_cast<int64_t>(out.size()) < num_tokens) return Status::kBufferTooSmall;
    const int64_t old_len = seq->num_tokens;
    const int64_t new_len = old_len + num_tokens;
    const bool was_fitting = policy_.fits(old_len);
    const int64_t expected_rows = ScorerT::kGranularity == KeyGranularity::kToken
                                      ? num_tokens
                                      : chunker_.num_full_chunks(new_len) - chunker_.num_full_chunks(old_len);
    if (keys.num_rows != expected_rows || (expected_rows > 0 && keys.data == nullptr)) {
      return Status::kInvalidArgument;
    }
    if (Status s = scorer_.check_keys(keys); s != Status::kOk) return s;
    if (Status s = commit_all(*seq); s != Status::kOk) return s;

    const int64_t old_pages = chunker_.num_pages(old_len);
    const int64_t new_pages = chunker_.num_pages(new_len) - old_pages;
    // New pages join the resident set when the policy forces them (a prefill's middle pages go
    // straight to the mirror); pages that leave it as the history grows give their slots back.
    const ForcedPages after =
        policy_.forced(new_len, (kv != nullptr ? new_len : old_len) / chunker_.page_tokens());
    const bool all_stay = policy_.fits(new_len);
    int64_t joining = 0;
    for (int64_t p = old_pages; p < old_pages + new_pages; ++p) joining += all_stay || after.contains(p);
    // Slots: every new page takes one while there are enough (free, evictable, or given back by
    // the pages that leave). Short of them, with lsa-copied KV the pages that do not join stream
    // straight to the mirror, and chosen pages of sets in flight (listed by no view yet) give way;
    // only then is the call refused.
    const bool stream = kCanStream && kv != nullptr;
    int64_t streamed = 0;
    int64_t tail_cell = -1;  // staged seal of the old tail page this append fills, see below
    Status tail_status = Status::kOk;
    try {
      plan_leaving(*seq, new_len, after, was_fitting, joining);
      int64_t available = store_.available_slots() + slots_freed_by_leaving(*seq);
      if (stream && new_pages > available) streamed = new_pages - joining;
      // The partial tail page this append fills leaves the set, but frees its slot only once
      // sealed, which the append does last; at the minimum reserve the next page needs that slot.
      // So its seal is staged first (written to the mirror, committed with the call).
      const PageId old_tail =
          old_len % chunker_.page_tokens() != 0 && new_pages > 0 ? seq->pages[old_pages - 1] : -1;
      if (stream && old_tail >= 0 && new_pages - streamed > available &&
          slots_freed_by_leaving(*seq, old_tail) > available - store_.available_slots()) {
        tail_status = stage_tail_seal(*seq, old_len, kv, &tail_cell);
        if (tail_status == Status::kOk) ++available;
      }
      const int64_t short_by = new_pages - streamed - available;
      give_way_.clear();
      if (short_by > 0 && plan_give_way(short_by, seq) < short_by) {
        cancel_tail_seal(tail_cell);
        return tail_status != Status::kOk ? tail_status : Status::kCapacityExceeded;
      }
      seq->pages.reserve(static_cast<size_t>(chunker_.num_pages(new_len)));
      seq->resident.reserve(seq->resident.size() + static_cast<size_t>(new_pages));
      if (seq->pending_active)
        seq->pending.reserve(seq->pending.size() + static_cast<size_t>(new_pages));
      reserve_leaving(std::max(seq->resident.size(), seq->pending.size()) +
                      static_cast<size_t>(new_pages));
      streamed_.reserve(static_cast<size_t>(streamed));
      if (Status s = store_.reserve_pages(new_pages); s != Status::kOk) {
        cancel_tail_seal(tail_cell);
        return s;
      }
    } catch (const std::bad_alloc&) {
      cancel_tail_seal(tail_cell);
      return Status::kOutOfMemory;
    }
    // Streamed pages first: writing them can fail (I/O), and then nothing else has changed.
    if (Status s = stream_pages(old_len, new_len, after, streamed > 0, kv); s != Status::kOk) {
      cancel_tail_seal(tail_cell);
      return s;
    }
    try {
      scorer_.append(seq->index, keys);
    } catch (const std::bad_alloc&) {
      for (PageId page : streamed_) store_.release(page);
      cancel_tail_seal(tail_cell);
      return Status::kOutOfMemory;
    }
    apply_give_way();
    apply_leaving(*seq, after);
    if constexpr (kCanStream) {
      // The old tail is sealed now, as it will be once write_kv below fills its slot: it becomes
      // evictable, and if a new page takes its slot, the mirror has every byte.
      if (tail_cell >= 0) store_.commit_seal(seq->pages[old_pages - 1], tail_cell);
    }
    if (was_fitting && !policy_.fits(new_len)) seq->steps_to_refresh = 0;  // rescore at once
    size_t next_streamed = 0;
    for (int64_t p = 0; p < new_pages; ++p) {
      const bool joins = all_stay || after.contains(old_pages + p);
      if (streamed > 0 && !joins) {
        seq->pages.push_back(streamed_[next_streamed++]);  // sealed, without a slot
        continue;
      }
      const PageId page = store_.create_page();  // cannot fail: records reserved above
      store_.take_slot(page);
      seq->pages.push_back(page);
      const auto logical = static_cast<int32_t>(seq->pages.size() - 1);
      // An unforced new page is never pinned: it becomes evictable once sealed (KV written).
      if (!joins) continue;
      store_.pin(page);
      seq->resident.push_back(logical);
      if (seq->pending_active) {
        store_.pin(page);  // one pin per set that lists it
        seq->pending.push_back(logical);
      }
    }
    if (new_pages > 0) touch(*seq);
    for (int32_t i = 0; i < num_tokens; ++i) {
      const int64_t t = old_len + i;
      out[i] = {store_.slot_of(seq->pages[chunker_.page_of_token(t)]), chunker_.offset_in_page(t)};
    }
    seq->num_tokens = new_len;
    if (kv != nullptr) {
      write_kv(*seq, old_len, num_tokens, kv);
      seq->committed_tokens = new_len;
      // Sealing cannot lose data: on failure the pages keep their slots, unsealed, never evictable.
      (void)seal_full_pages(*seq);
    }
    return Status::kOk;
  }

  /// Declares that the engine has written the KV of every token appended so far.
  [[nodiscard]] Status commit(SeqId id) noexcept {
    if (Status s = store_status(); s != Status::kOk) return s;
    Sequence* seq = find(id);
    if (seq == nullptr) return Status::kUnknownSequence;
    if (Status s = commit_all(*seq); s != Status::kOk) return s;
    reconcile(*seq, /*full_scan=*/false);  // written pages are no longer forced
    return Status::kOk;
  }

  /// Removes tokens [num_tokens, length) (llama.cpp seq_rm(id, num_tokens, -1)).
  [[nodiscard]] Status truncate(SeqId id, int64_t num_tokens) noexcept {
    if (Status s = store_status(); s != Status::kOk) return s;
    Sequence* seq = find(id);
    if (seq == nullptr) return Status::kUnknownSequence;
    if (num_tokens < 0 || num_tokens > seq->num_tokens) return Status::kOutOfRange;
    // The set in flight was chosen for the longer history and a refresh follows at once: it gives
    // way instead of swapping in, so a truncate that fails leaves the serving set as it was.
    cancel_pending(*seq);
    if (Status s = commit_all(*seq); s != Status::kOk) return s;
    if (num_tokens == seq->num_tokens) {
      reconcile(*seq, /*full_scan=*/false);  // nothing removed; written pages are not forced now
      return Status::kOk;
    }

    // Plan: pages the new forced set needs that are not resident (`joining`; `missing` of them
    // have no slot), and a private tail to write into.
    const int64_t kept_pages = chunker_.num_pages(num_tokens);
    const bool partial_tail = num_tokens % chunker_.page_tokens() != 0;
    const PageId tail = partial_tail ? seq->pages[kept_pages - 1] : -1;
    const bool copy_tail = partial_tail && store_.refs(tail) > 1;
    const ForcedPages f = policy_.forced(num_tokens, num_tokens / chunker_.page_tokens());
    std::vector<int32_t> joining;
    std::vector<PageId> missing;   // joining pages without a slot
    std::vector<PageId> cached;    // joining pages with one
    std::vector<std::byte> bytes;  // pages read before anything changes (see below)
    try {
      if (copy_tail && store_.reserve_pages(1) != Status::kOk) return Status::kOutOfMemory;
      seq->resident.reserve(static_cast<size_t>(kept_pages));
      reserve_leaving(static_cast<size_t>(kept_pages));
      for (int64_t p = 0; p < f.num_pages; ++p) {
        const bool replaced = copy_tail && p == kept_pages - 1;
        const bool wanted = policy_.fits(num_tokens) || f.contains(p);
        if (wanted && !replaced && !is_resident(*seq, p)) joining.push_back(static_cast<int32_t>(p));
      }
      missing.reserve(joining.size());
      cached.reserve(joining.size());
    } catch (const std::bad_alloc&) {
      return Status::kOutOfMemory;
    }
    int64_t cached_unpinned = 0;  // joining pages in evictable slots: pinning them takes the slot
    for (int32_t p : joining) {
      const PageId page = seq->pages[p];
      const int32_t slot = store_.slot_of(page);
      if (slot >= 0) {
        store_.wait_copies(store_.slot_job(slot));  // another sequence's recall may be copying it
        if (store_.slot_failed(slot)) {
          // That copy failed: the slot does not hold the page. Unless a set in flight still holds
          // it (it gives it up when it finishes), the page goes back to the mirror only.
          if (store_.pins(page) > 0) return Status::kIoError;
          store_.drop_slot(page);
        }
      }
      if (store_.slot_of(page) < 0) {
        missing.push_back(page);
      } else {
        cached.push_back(page);
        cached_unpinned += store_.pins(page) == 0;
      }
    }
    // Slots: one per missing page, plus the private tail. Free and evictable slots come first;
    // then the slots of the resident pages this call drops, usable only once they are dropped, so
    // the pages that go there (and the tail) are read into host memory before anything changes;
    // then chosen pages of other sequences' sets in flight give way.
    const auto needed = static_cast<int64_t>(missing.size()) + (copy_tail ? 1 : 0);
    const int64_t direct = std::max<int64_t>(0, store_.available_slots() - cached_unpinned);
    int64_t from_dropped = 0;
    for (int32_t p : seq->resident) {
      const PageId page = seq->pages[p];
      from_dropped += p >= kept_pages &&
                      (store_.refs(page) == 1 || (store_.pins(page) == 1 && store_.sealed(page)));
    }
    int64_t given_way = 0;
    try {
      give_way_.clear();
      if (needed > direct + from_dropped) {
        given_way = needed - direct - from_dropped;
        if (plan_give_way(given_way, seq) < given_way) return Status::kCapacityExceeded;
      }
      const int64_t late =
          std::max<int64_t>(0, static_cast<int64_t>(missing.size()) - direct - given_way);
      bytes.resize(static_cast<size_t>((late + (copy_tail ? 1 : 0)) * store_.page_bytes()));
    } catch (const std::bad_alloc&) {
      return Status::kOutOfMemory;
    }
    const int64_t late =
        static_cast<int64_t>(bytes.size()) / store_.page_bytes() - (copy_tail ? 1 : 0);
    const size_t first_late = missing.size() - static_cast<size_t>(late);
    std::byte* tail_bytes = bytes.data() + late * store_.page_bytes();
    for (size_t i = first_late; i < missing.size(); ++i) {
      std::byte* at = bytes.data() + static_cast<int64_t>(i - first_late) * store_.page_bytes();
      if (Status s = store_.read_page(missing[i], at); s != Status::kOk) return s;
    }
    if (copy_tail) {
      if (Status s = store_.read_page(tail, tail_bytes); s != Status::kOk) return s;
    }
    apply_give_way();
    // Pin joining pages, recalling the missing ones that free slots take; an I/O failure unpins
    // them all again.
    for (PageId page : cached) store_.pin(page);
    for (size_t i = 0; i < first_late; ++i) {
      store_.pin(missing[i]);
      if (Status s = store_.recall_sync(missing[i]); s != Status::kOk) {
        for (size_t j = 0; j <= i; ++j) store_.unpin(missing[j]);
        for (PageId page : cached) store_.unpin(page);
        return s;
      }
    }
    store_.submit_recalls();

    // Apply: drop pages past the end, give the late pages the slots that freed, list the joining
    // pages, give the tail a private page.
    std::erase_if(seq->resident, [&](int32_t p) {
      if (p < kept_pages) return false;
      store_.unpin(seq->pages[p]);
      return true;
    });
    for (int64_t p = kept_pages; p < static_cast<int64_t>(seq->pages.size()); ++p) {
      store_.release(seq->pages[p]);
    }
    seq->pages.resize(static_cast<size_t>(kept_pages));
    for (size_t i = first_late; i < missing.size(); ++i) {
      store_.pin(missing[i]);  // before the slot: the next take_slot must not evict it
      const int32_t slot = store_.take_slot(missing[i]);
      store_.write_page(slot,
                        bytes.data() + static_cast<int64_t>(i - first_late) * store_.page_bytes());
      store_.count_recall();
    }
    for (int32_t p : joining) {
      seq->resident.insert(std::upper_bound(seq->resident.begin(), seq->resident.end(), p), p);
    }
    if (copy_tail) {
      const PageId fresh = store_.create_page();
      store_.take_slot(fresh);
      store_.pin(fresh);
      store_.write_page(store_.slot_of(fresh), tail_bytes);
      const auto last = static_cast<int32_t>(kept_pages - 1);
      if (is_resident(*seq, last)) {
        store_.unpin(tail);
      } else {
        seq->resident.insert(std::upper_bound(seq->resident.begin(), seq->resident.end(), last), last);
      }
      store_.release(tail);
      seq->pages[last] = fresh;
    } else if (partial_tail) {
      store_.unseal(tail);
    }
    seq->num_tokens = num_tokens;
    seq->committed_tokens = num_tokens;
    seq->num_sealed = std::min<int64_t>(seq->num_sealed, num_tokens / chunker_.page_tokens());
    std::erase_if(seq->chosen, [&](int32_t p) { return p >= kept_pages; });
    std::erase_if(seq->chosen_ranked, [&](int32_t p) { return p >= kept_pages; });
    // The joining forced pages may have pushed the set past kmax_pages: the worst chosen leave.
    reconcile(*seq);
    scorer_.truncate(seq->index, num_tokens);
    seq->steps_to_refresh = 0;
    touch(*seq);
    return Status::kOk;
  }

  /// Starts sequence `dst` as a copy of `src`: full pages are shared, the partial tail is copied.
  [[nodiscard]] Status fork(SeqId src, SeqId dst) noexcept {
    if (Status s = store_status(); s != Status::kOk) return s;
    Sequence* parent = find(src);
    if (parent == nullptr) return Status::kUnknownSequence;
    if (sequences_.contains(dst)) return Status::kDuplicateSequence;
    if (static_cast<int32_t>(sequences_.size()) >= config_.max_sequences) {
      return Status::kTooManySequences;
    }
    // The parent's set in flight stays in flight (the child starts from the serving set and
    // refreshes at once): a fork that fails leaves the parent's sets as they were.
    if (Status s = commit_all(*parent); s != Status::kOk) return s;
    // Written pages are no longer forced and leave the parent's set, giving their slots back;
    // the child's private tail needs one slot.
    const ForcedPages f = forced_now(*parent);
    const bool partial_tail = parent->num_tokens % chunker_.page_tokens() != 0;
    Sequence* child = nullptr;
    try {
      plan_leaving(*parent, parent->num_tokens, f, /*was_fitting=*/false, 0);
      give_way_.clear();
      if (partial_tail && store_.available_slots() + slots_freed_by_leaving(*parent) < 1 &&
          plan_give_way(1, parent) < 1) {
        return Status::kCapacityExceeded;
      }
      if (Status s = store_.reserve_pages(1); s != Status::kOk) return s;
      Sequence copy;
      copy.num_tokens = parent->num_tokens;
      copy.committed_tokens = parent->committed_tokens;
      copy.num_sealed = parent->num_sealed;
      copy.pages = parent->pages;
      copy.resident = parent->resident;
      copy.chosen = parent->chosen;
      copy.chosen_ranked = parent->chosen_ranked;
      copy.index = parent->index;
      copy.id = dst;
      copy.ticket = std::make_unique<detail::RecallTicket>();
      copy.pending.reserve(parent->pending.capacity());
      copy.next.reserve(parent->next.capacity());
      child = &sequences_.emplace(dst, std::move(copy)).first->second;
    } catch (const std::bad_alloc&) {
      return Status::kOutOfMemory;
    }
    apply_give_way();
    apply_leaving(*parent, f);
    // The child starts with the parent's reconciled sets (no larger than the copies: no
    // allocation).
    child->resident.assign(parent->resident.begin(), parent->resident.end());
    child->chosen.assign(parent->chosen.begin(), parent->chosen.end());
    child->chosen_ranked.assign(parent->chosen_ranked.begin(), parent->chosen_ranked.end());
    child->suffix_begin = parent->suffix_begin;
    for (PageId page : child->pages) store_.retain(page);
    for (int32_t p : child->resident) store_.pin(child->pages[p]);
    if (partial_tail) {
      const int64_t last = static_cast<int64_t>(child->pages.size()) - 1;
      const PageId shared = child->pages[last];
      const PageId fresh = store_.create_page();
      store_.take_slot(fresh);
      store_.pin(fresh);
      store_.copy_slot(store_.slot_of(fresh), store_.slot_of(shared));
      store_.unpin(shared);
      store_.release(shared);
      child->pages[last] = fresh;
    }
    child->steps_to_refresh = 0;
    touch(*child);
    return Status::kOk;
  }

  /// Ends a sequence and releases everything it holds, exactly once.
  [[nodiscard]] Status remove(SeqId id) noexcept {
    auto it = sequences_.find(id);
    if (it == sequences_.end()) return Status::kUnknownSequence;
    Sequence& seq = it->second;
    cancel_pending(seq);
    for (int32_t p : seq.resident) store_.unpin(seq.pages[p]);
    for (PageId page : seq.pages) store_.release(page);
    sequences_.erase(it);
    return Status::kOk;
  }

  // ---- per decode step ----------------------------------------------------------------------

  /// True when the next step() refreshes `id` and needs its query.
  bool refresh_due(SeqId id) const noexcept {
    const Sequence* seq = find(id);
    return seq != nullptr && due(*seq) && !seq->pending_active && !policy_.fits(seq->num_tokens);
  }

  /// One decode step for a batch: refreshes sequences that are due (their query must be in
  /// `queries[b]`; others may pass an empty Query or no queries at all) and writes the view.
  [[nodiscard]] Status step(std::span<const SeqId> batch, std::span<const Query> queries,
                            const ViewBuffers& view) noexcept {
    if (Status s = store_status(); s != Status::kOk) return s;
    const auto num_batch = static_cast<int64_t>(batch.size());
    if (!queries.empty() && static_cast<int64_t>(queries.size()) != num_batch) {
      return Status::kInvalidArgument;
    }
    const bool csr = view.indptr != nullptr || view.indices != nullptr || view.last_page_len != nullptr;
    if (csr && (view.indptr == nullptr || view.indices == nullptr || view.last_page_len == nullptr)) {
      return Status::kInvalidArgument;
    }
    // Validate everything and compute refreshes into per-sequence scratch; nothing changes yet.
    ++epoch_;
    if (num_batch > config_.max_sequences) return Status::kInvalidArgument;
    batch_.clear();
    int64_t nnz = 0;
    for (int64_t b = 0; b < num_batch; ++b) {
      Sequence* seq = find(batch[b]);
      if (seq == nullptr) return Status::kUnknownSequence;
      if (seq->epoch == epoch_) return Status::kDuplicateSequence;
      seq->epoch = epoch_;
      batch_.push_back(seq);
      seq->refresh_now = due(*seq) && !policy_.fits(seq->num_tokens) && !seq->pending_active;
      // Decided once: the buffer checks below and the commit must agree on the listed set. A
      // finished set swaps in only if every copy into it landed; else the current set serves on.
      seq->swap_now = seq->pending_active && store_.copies_done(seq->ready_at);
      seq->swap_ok = seq->swap_now && pending_landed(*seq);
      if (seq->refresh_now) {
        if (queries.empty()) return Status::kInvalidArgument;
        if (Status s = scorer_.check_query(queries[b]); s != Status::kOk) return s;
      }
      const int64_t pages = chunker_.num_pages(seq->num_tokens);
      if (view.block_table != nullptr && pages > view.block_table_width) return Status::kBufferTooSmall;
    }
    for (int64_t b = 0; b < num_batch; ++b) {
      Sequence& seq = *batch_[b];
      if (seq.refresh_now) {
        if (Status s = plan_refresh(seq, queries[b]); s != Status::kOk) return s;
      }
      const int64_t listed = static_cast<int64_t>(view_set(seq).size());
      if (view.slot_lists != nullptr && listed > view.slot_list_width) return Status::kBufferTooSmall;
      nnz += listed;
    }
    if (csr && nnz > view.indices_capacity) return Status::kBufferTooSmall;
    // The copy jobs queried above may have ended failed: nothing has changed yet.
    if (Status s = store_status(); s != Status::kOk) return s;

    // Commit: swap in finished async sets, apply refreshes, advance refresh clocks.
    for (Sequence* seq : batch_) {
      if (seq->swap_now) finish_pending(*seq, seq->swap_ok);
      if (seq->refresh_now) apply_refresh(*seq);
      if (seq->refresh_now || (due(*seq) && policy_.fits(seq->num_tokens))) {
        seq->steps_to_refresh =
            seq->refreshed_once ? policy_.interval() : policy_.first_interval(seq->id);
        seq->refreshed_once = true;
      }
      if (!due(*seq)) --seq->steps_to_refresh;
    }
    store_.submit_recalls();  // the recalls of every refresh above, as one batch
    write_view(view);
    // A device store that could not queue those recalls: the new sets never swap in (their slots
    // are marked failed), and from now on every call says so (docs/api-contract.md).
    return store_status();
  }

  // ---- inspection ---------------------------------------------------------------------------

  /// True when `id` is a live sequence.
  bool contains(SeqId id) const noexcept { return find(id) != nullptr; }
  /// Tokens in a sequence (0 when unknown).
  int64_t length(SeqId id) const noexcept {
    const Sequence* seq = find(id);
    return seq == nullptr ? 0 : seq->num_tokens;
  }
  /// Current resident set of a sequence: ascending logical pages (empty when unknown).
  std::span<const int32_t> resident_pages(SeqId id) const noexcept {
    const Sequence* seq = find(id);
    return seq == nullptr ? std::span<const int32_t>{} : std::span<const int32_t>(seq->resident);
  }
  /// A number that changes whenever `id`'s resident set or the slot of one of its resident pages
  /// changes, unique across sequences (0 when unknown): a device table rewrites a row only then.
  uint64_t resident_version(SeqId id) const noexcept {
    const Sequence* seq = find(id);
    return seq == nullptr ? 0 : seq->resident_version;
  }
  /// Writes the slots of `id`'s resident pages, in resident_pages(id) order, to out[0, n) and
  /// returns n; -1 when `id` is unknown or `out` is shorter than the set (nothing written then).
  int64_t resident_slots(SeqId id, std::span<int32_t> out) const noexcept {
    const Sequence* seq = find(id);
    if (seq == nullptr || out.size() < seq->resident.size()) return -1;
    for (size_t i = 0; i < seq->resident.size(); ++i) {
      out[i] = store_.slot_of(seq->pages[seq->resident[i]]);
    }
    return static_cast<int64_t>(seq->resident.size());
  }
  /// Reserve slot of a logical page, -1 when it is not resident (or unknown).
  int32_t slot_of(SeqId id, int64_t page) const noexcept {
    const Sequence* seq = find(id);
    if (seq == nullptr || page < 0 || page >= static_cast<int64_t>(seq->pages.size())) return -1;
    return store_.slot_of(seq->pages[page]);
  }
  /// Copies the KV bytes of token `t` of layer `layer` (from its slot or the mirror) into `dst`.
  [[nodiscard]] Status read_token(SeqId id, int64_t t, int32_t layer, std::byte* dst) const noexcept {
    const Sequence* seq = find(id);
    if (seq == nullptr) return Status::kUnknownSequence;
    if (t < 0 || t >= seq->num_tokens || layer < 0 || layer >= config_.num_layers) {
      return Status::kOutOfRange;
    }
    const int64_t at = layer * config_.bytes_per_page_per_layer() +
                       chunker_.offset_in_page(t) * config_.bytes_per_token_per_layer;
    return store_.read_bytes(seq->pages[chunker_.page_of_token(t)], at, dst,
                             config_.bytes_per_token_per_layer);
  }
  /// Address of token `offset`, layer `layer` inside reserve slot `slot` (where append's KV goes).
  std::byte* token_kv(int32_t slot, int32_t layer, int32_t offset) noexcept {
    return store_.slot_data(slot) + layer * config_.bytes_per_page_per_layer() +
           int64_t{offset} * config_.bytes_per_token_per_layer;
  }
  /// Counters and occupancy.
  Stats stats() const noexcept {
    Stats s;
    s.live_sequences = static_cast<int64_t>(sequences_.size());
    for (const auto& [id, seq] : sequences_) {
      s.total_pages += static_cast<int64_t>(seq.pages.size());
      s.resident_pages += static_cast<int64_t>(seq.resident.size());
    }
    s.resident_fraction = s.total_pages == 0 ? 1.0 : double(s.resident_pages) / double(s.total_pages);
    s.reserve_slots_used = occupied_slots();
    s.mirror_pages = store_.mirror_pages();
    s.refreshes = refreshes_;
    s.recalled_pages = store_.counters().recalled_pages;
    s.recalled_bytes = s.recalled_pages * store_.page_bytes();
    s.sealed_pages = store_.counters().sealed_pages;
    s.evictions = store_.counters().evictions;
    s.capacity_refusals = capacity_refusals_;
    s.recall_errors = recall_errors_;
    s.corrupt_recalls = corrupt_recalls_;
    return s;
  }
  /// The configuration.
  const CacheConfig& config() const noexcept { return config_; }
  /// The store (reserve memory for the engine's attention kernel: store().reserve()).
  StoreT& store() noexcept { return store_; }
  /// The store.
  const StoreT& store() const noexcept { return store_; }

 private:
  // Whether the store can write a page from append's KV into the mirror before a call commits
  // (store_concept.hpp).
  static constexpr bool kCanStream =
      requires(StoreT & s, PageId id, int32_t first, const std::byte* kv, int64_t* cell) {
    { s.stage_seal(id, first, kv, cell) }
    noexcept->std::same_as<Status>;
    { s.commit_seal(id, int64_t{}) }
    noexcept;
    { s.cancel_seal(int64_t{}) }
    noexcept;
  };

  struct Sequence {
    SeqId id = 0;
    int64_t num_tokens = 0;
    int64_t committed_tokens = 0;   // tokens whose KV the engine has written
    int64_t num_sealed = 0;         // pages [0, num_sealed) are in the mirror
    std::vector<PageId> pages;      // logical page -> page record
    std::vector<int32_t> resident;  // ascending logical pages, each pinned once
    uint64_t resident_version = 0;  // see resident_version()
    typename ScorerT::Index index;
    int32_t steps_to_refresh = 0;   // <= 0: due
    bool refreshed_once = false;
    bool refresh_now = false;       // scratch of the current step
    uint64_t epoch = 0;             // last step that listed this sequence
    std::vector<int32_t> chosen;    // unforced pages the last refresh chose, ascending
    std::vector<int32_t> chosen_ranked;  // the same pages, best first
    int64_t suffix_begin = 0;       // forced suffix start when `resident` was last reconciled
    std::vector<int32_t> next;      // scratch: the set a refresh chose
    bool pending_active = false;    // async: `pending` is being recalled
    bool swap_now = false;          // scratch of the current step: `pending` is finished
    bool swap_ok = false;           // scratch of the current step: ...and replaces `resident`
    uint64_t ready_at = 0;          // async: worker job after which every page of `pending` is there
    std::vector<int32_t> pending;   // async: set that serves once its copies finish
    std::vector<int32_t> pending_chosen;  // async: `chosen` that comes with `pending`
    std::vector<int32_t> pending_chosen_ranked;  // async: `chosen_ranked` that comes with `pending`
    std::unique_ptr<detail::RecallTicket> ticket;
  };

  // kOk, or the sticky failure of a store that has one (cuda::CudaStore::status()).
  Status store_status() const noexcept {
    if constexpr (requires(const StoreT& s) {
                    { s.status() } noexcept -> std::same_as<Status>;
                  }) {
      return store_.status();
    } else {
      return Status::kOk;
    }
  }

  static const CacheConfig& checked(const CacheConfig& c) {
    validate(c);
    return c;
  }

  Sequence* find(SeqId id) noexcept {
    auto it = sequences_.find(id);
    return it == sequences_.end() ? nullptr : &it->second;
  }
  const Sequence* find(SeqId id) const noexcept {
    auto it = sequences_.find(id);
    return it == sequences_.end() ? nullptr : &it->second;
  }

  static bool due(const Sequence& seq) noexcept { return seq.steps_to_refresh <= 0; }

  // Records that seq's resident set (or a resident page's slot) changed: a new, cache-wide unique
  // version, so (id, version) never repeats even when an id is removed and added again.
  void touch(Sequence& seq) noexcept { seq.resident_version = ++last_version_; }

  bool is_resident(const Sequence& seq, int64_t page) const noexcept {
    return std::binary_search(seq.resident.begin(), seq.resident.end(), static_cast<int32_t>(page));
  }

  int64_t occupied_slots() const noexcept {
    int64_t n = 0;
    for (int32_t slot = 0; slot < store_.num_slots(); ++slot) n += store_.page_in_slot(slot) >= 0;
    return n;
  }

  // The set the view lists this step (at most: a swapped-in set may still shrink to policy).
  const std::vector<int32_t>& view_set(const Sequence& seq) const noexcept {
    if (seq.refresh_now && !store_.async()) return seq.next;
    if (seq.swap_now && seq.swap_ok) return seq.pending;
    return seq.resident;
  }

  ForcedPages forced_now(const Sequence& seq) const noexcept {
    return policy_.forced(seq.num_tokens, seq.committed_tokens / chunker_.page_tokens());
  }

  // Pages that leave `set` (ascending; `chosen` ascending, `ranked` best first) when the history
  // becomes `num_tokens` long with forced pages `f` and `added` new pages joining, into `out`
  // (ascending): pages of [scan_from, f.suffix_begin) that are neither forced nor chosen, then the
  // worst chosen pages while the set would exceed kmax_pages. They stay in their slots, evictable,
  // until someone needs the slot.
  void plan_set_leaving(std::span<const int32_t> set, std::span<const int32_t> chosen,
                        std::span<const int32_t> ranked, int64_t scan_from, int64_t num_tokens,
                        const ForcedPages& f, int64_t added, std::vector<int32_t>& out) const {
    out.clear();
    if (policy_.fits(num_tokens)) return;
    auto first = std::lower_bound(set.begin(), set.end(), static_cast<int32_t>(scan_from));
    auto last = std::lower_bound(first, set.end(), static_cast<int32_t>(f.suffix_begin));
    for (auto it = first; it < last; ++it) {
      if (!f.contains(*it) && !std::binary_search(chosen.begin(), chosen.end(), *it)) out.push_back(*it);
    }
    int64_t excess = static_cast<int64_t>(set.size()) + added - static_cast<int64_t>(out.size()) -
                     policy_.kmax_pages();
    for (auto it = ranked.rbegin(); excess > 0 && it != ranked.rend(); ++it) {
      if (f.contains(*it) || !std::binary_search(set.begin(), set.end(), *it)) continue;
      out.push_back(*it);
      --excess;
    }
    std::sort(out.begin(), out.end());
  }

  // Plans what leaves the resident set (leaving_) and, in async mode, the set in flight
  // (leaving_pending_; it gets the same new pages and is held to the same budget).
  void plan_leaving(const Sequence& seq, int64_t num_tokens, const ForcedPages& f, bool was_fitting,
                    int64_t added) {
    plan_set_leaving(seq.resident, seq.chosen, seq.chosen_ranked, was_fitting ? 0 : seq.suffix_begin,
                     num_tokens, f, added, leaving_);
    leaving_pending_.clear();
    if (seq.pending_active) {
      plan_set_leaving(seq.pending, seq.pending_chosen, seq.pending_chosen_ranked, 0, num_tokens, f,
                       added, leaving_pending_);
    }
  }

  // Slots that become evictable when the planned pages leave: every pin of the page goes (and
  // the page is sealed, or is `sealing`: its seal is staged).
  int64_t slots_freed_by_leaving(const Sequence& seq, PageId sealing = -1) const noexcept {
    auto in = [](const std::vector<int32_t>& v, int32_t p) {
      return std::binary_search(v.begin(), v.end(), p);
    };
    auto freed = [&](int32_t p, int32_t pins_dropped) {
      const PageId page = seq.pages[p];
      return store_.pins(page) == pins_dropped && (store_.sealed(page) || page == sealing) &&
             store_.slot_of(page) >= 0;
    };
    int64_t n = 0;
    for (int32_t p : leaving_) n += freed(p, 1 + in(leaving_pending_, p));
    for (int32_t p : leaving_pending_) n += !in(leaving_, p) && freed(p, 1);
    return n;
  }

  // Unpins and unlists the planned pages and records the new forced suffix.
  void apply_leaving(Sequence& seq, const ForcedPages& f) noexcept {
    seq.suffix_begin = f.suffix_begin;
    if (!leaving_.empty()) touch(seq);
    drop_from_set(seq, leaving_, seq.resident, seq.chosen, seq.chosen_ranked);
    drop_from_set(seq, leaving_pending_, seq.pending, seq.pending_chosen, seq.pending_chosen_ranked);
  }

  void drop_from_set(Sequence& seq, const std::vector<int32_t>& leaving, std::vector<int32_t>& set,
                     std::vector<int32_t>& chosen, std::vector<int32_t>& ranked) noexcept {
    if (leaving.empty()) return;
    auto leaves = [&](int32_t p) { return std::binary_search(leaving.begin(), leaving.end(), p); };
    for (int32_t p : leaving) store_.unpin(seq.pages[p]);
    std::erase_if(set, leaves);
    std::erase_if(chosen, leaves);
    std::erase_if(ranked, leaves);
  }

  // Brings the resident set back to policy (forced pages, chosen pages, at most kmax_pages) after
  // a call that changed it or its forced pages without adding pages; only unpins. Without
  // `full_scan` only pages that left the forced suffix since it was last recorded are looked at.
  void reconcile(Sequence& seq, bool full_scan = true) noexcept {
    const ForcedPages f = forced_now(seq);
    try {
      plan_leaving(seq, seq.num_tokens, f, /*was_fitting=*/full_scan, 0);
    } catch (const std::bad_alloc&) {
      leaving_.clear();  // the sets stay a little larger until the next refresh; nothing is lost
      leaving_pending_.clear();
    }
    apply_leaving(seq, f);
  }

  // Seals full pages whose tokens are all committed.
  Status seal_full_pages(Sequence& seq) noexcept {
    const int64_t full = seq.committed_tokens / chunker_.page_tokens();
    for (; seq.num_sealed < full; ++seq.num_sealed) {
      if (Status s = store_.seal(seq.pages[seq.num_sealed]); s != Status::kOk) return s;
    }
    return Status::kOk;
  }

  Status commit_all(Sequence& seq) noexcept {
    seq.committed_tokens = seq.num_tokens;
    return seal_full_pages(seq);
  }

  // Writes the KV of tokens [first, first + num_tokens) page by page.
  void write_kv(Sequence& seq, int64_t first, int32_t num_tokens, const std::byte* kv) noexcept {
    const int64_t token_bytes = int64_t{config_.num_layers} * config_.bytes_per_token_per_layer;
    for (int32_t i = 0; i < num_tokens;) {
      const int64_t t = first + i;
      const int32_t offset = chunker_.offset_in_page(t);
      const auto run = static_cast<int32_t>(
          std::min<int64_t>(num_tokens - i, chunker_.page_tokens() - offset));
      const int32_t slot = store_.slot_of(seq.pages[chunker_.page_of_token(t)]);
      if (slot >= 0) store_.write_tokens(slot, offset, run, kv + i * token_bytes);  // else streamed
      i += run;
    }
  }

  // Scores and selects into seq.next (forced first, then best first); changes nothing else.
  Status plan_refresh(Sequence& seq, const Query& query) noexcept {
    try {
      const int64_t chunks = scorer_.num_chunks(seq.index);
      scores_.resize(static_cast<size_t>(chunks));
      scorer_.score(seq.index, query, std::span<float>(scores_));
      SelectionInput in;
      in.scores = scores_;
      in.num_tokens = seq.num_tokens;
      in.first_uncommitted_page = seq.committed_tokens / chunker_.page_tokens();
      in.resident_pages = seq.resident;
      in.probabilities = ScorerT::kProbabilities;
      policy_.select(in, scratch_, seq.next);
      seq.pending.reserve(seq.next.size() + 8);
      reserve_leaving(seq.next.size() + 8);
    } catch (const std::bad_alloc&) {
      return Status::kOutOfMemory;
    }
    return Status::kOk;
  }

  // Makes seq.next resident (sync) or starts recalling it (async); refuses what the reserve
  // cannot hold, counting each refusal.
  void apply_refresh(Sequence& seq) noexcept {
    ++refreshes_;
    std::vector<int32_t>& next = seq.next;
    const bool async = store_.async();
    if (!async) {
      // Pages leaving the set become evictable first, so the new set can reuse their slots.
      sorted_next_.assign(next.begin(), next.end());
      std::sort(sorted_next_.begin(), sorted_next_.end());
      for (int32_t p : seq.resident) {
        if (!std::binary_search(sorted_next_.begin(), sorted_next_.end(), p)) store_.unpin(seq.pages[p]);
      }
    }
    // `next` is forced pages first, then best first: when slots run out, the worst are refused.
    size_t kept = 0;
    for (const int32_t p : next) {
      const PageId page = seq.pages[p];
      if (is_resident(seq, p) && !async) {
        next[kept++] = p;
        continue;
      }
      if (const int32_t slot = store_.slot_of(page);
          async && slot >= 0 && store_.slot_ready(slot) && store_.slot_failed(slot)) {
        // An earlier copy into this slot failed (a set in flight that has not finished yet still
        // holds it): its bytes are not the page's. Copy it anew, or leave it out while held.
        if (store_.pins(page) > 0) continue;
        store_.drop_slot(page);
      }
      if (store_.slot_of(page) >= 0) {
        store_.pin(page);
      } else if (store_.available_slots() == 0) {
        ++capacity_refusals_;
        continue;
      } else if (async) {
        seq.ticket->remaining.fetch_add(1, std::memory_order_relaxed);
        store_.pin(page);
        store_.recall_async(page, seq.ticket.get());
      } else {
        store_.pin(page);
        if (const Status s = store_.recall_sync(page); s != Status::kOk) {
          store_.unpin(page);
          ++recall_errors_;
          corrupt_recalls_ += s == Status::kCorrupt;
          continue;
        }
      }
      // A page found with a slot may still be copying for another sequence's recall: the set
      // swaps in only after that copy (and every earlier one) too.
      if (async) seq.ready_at = std::max(seq.ready_at, store_.slot_job(store_.slot_of(page)));
      next[kept++] = p;
    }
    next.resize(kept);
    const ForcedPages f = forced_now(seq);
    std::vector<int32_t>& ranked = async ? seq.pending_chosen_ranked : seq.chosen_ranked;
    ranked.clear();
    for (int32_t p : next) {
      if (!f.contains(p)) ranked.push_back(p);  // `next` lists chosen pages best first
    }
    std::vector<int32_t>& chosen = async ? seq.pending_chosen : seq.chosen;
    chosen.assign(ranked.begin(), ranked.end());
    std::sort(chosen.begin(), chosen.end());
    std::sort(next.begin(), next.end());
    if (!async) {
      seq.resident.swap(next);
      touch(seq);
    } else {
      seq.pending.assign(next.begin(), next.end());
      seq.pending_active = true;
    }
  }

  // True when every page of the finished set in flight holds its bytes: no copy into it failed.
  bool pending_landed(const Sequence& seq) const noexcept {
    for (int32_t p : seq.pending) {
      const int32_t slot = store_.slot_of(seq.pages[p]);
      if (slot < 0 || store_.slot_failed(slot)) return false;
    }
    return true;
  }

  // Unpins a page of a set in flight that does not swap in. A page whose copy failed gives its
  // slot up once no set holds it, so no later set finds garbage there.
  void release_pending_page(PageId page) noexcept {
    store_.unpin(page);
    const int32_t slot = store_.slot_of(page);
    if (slot >= 0 && store_.pins(page) == 0 && store_.slot_ready(slot) &&
        store_.slot_failed(slot)) {
      store_.drop_slot(page);
    }
  }

  // Counts the failed copies of a finished or cancelled set in flight.
  void count_recall_errors(Sequence& seq) noexcept {
    recall_errors_ += seq.ticket->failed.exchange(0, std::memory_order_relaxed);
    corrupt_recalls_ += seq.ticket->corrupt.exchange(0, std::memory_order_relaxed);
  }

  // Async: the pending set's copies are done; it replaces the current set when they all landed
  // (`landed`, decided when the step checked its buffers). Otherwise the current set keeps
  // serving and the pages only the failed set held go back to the mirror (they keep their slot as
  // cache when their own copy did land).
  void finish_pending(Sequence& seq, bool landed) noexcept {
    seq.pending_active = false;
    count_recall_errors(seq);
    if (!landed) {
      for (int32_t p : seq.pending) release_pending_page(seq.pages[p]);
      seq.pending.clear();
      seq.pending_chosen.clear();
      seq.pending_chosen_ranked.clear();
      return;
    }
    for (int32_t p : seq.resident) {
      if (!std::binary_search(seq.pending.begin(), seq.pending.end(), p)) store_.unpin(seq.pages[p]);
    }
    for (int32_t p : seq.pending) {
      if (!is_resident(seq, p)) continue;
      store_.unpin(seq.pages[p]);  // it was pinned twice: by the current set and by the pending set
    }
    seq.resident.swap(seq.pending);
    touch(seq);
    seq.chosen.swap(seq.pending_chosen);
    seq.chosen_ranked.swap(seq.pending_chosen_ranked);
    // Pages that left the forced suffix while the copies ran are not part of the new choice, and
    // pages appended meanwhile may have pushed the set past kmax_pages. (leaving_ has room for
    // this set: reserve_leaving; a step does not allocate.)
    reconcile(seq);
  }

  // Lifecycle calls that end or rewrite a history (remove, truncate) drop its set in flight
  // instead of swapping it in: a truncate that then fails leaves the serving set as it was, and a
  // refresh follows it at once anyway. Waits for the set's copies (a lifecycle call may block;
  // the ticket is reused by the next refresh); pages whose copy landed stay cached in their slots.
  void cancel_pending(Sequence& seq) noexcept {
    if (!seq.pending_active) return;
    detail::RecallWorker::wait(*seq.ticket);
    store_.wait_copies(seq.ready_at);  // pages shared with other sequences' recalls too
    finish_pending(seq, /*landed=*/false);
  }

  void wait_pending(Sequence& seq) noexcept {
    if (seq.ticket) detail::RecallWorker::wait(*seq.ticket);
  }

  // Room in plan_leaving's scratch for a set of `set_size` pages: the reconcile that a step does
  // when it swaps a finished set in then allocates nothing (invariant 6). Every call that lets a
  // set grow calls this first. Throws std::bad_alloc.
  void reserve_leaving(size_t set_size) {
    leaving_.reserve(set_size);
    leaving_pending_.reserve(set_size);
  }

  // Plans taking chosen pages out of sets in flight, worst first, until `want` slots would become
  // evictable; returns how many would (at most `want`). A page frees its slot only when every pin
  // on it is a set in flight giving it up (no serving set holds it; forks may share it), and pages
  // that `self`'s own plan_leaving drops already are left to it. No view lists a set in flight,
  // so giving way changes nothing a caller sees: the set swaps in later with fewer chosen pages.
  // Throws std::bad_alloc.
  int64_t plan_give_way(int64_t want, const Sequence* self) {
    give_way_.clear();
    give_way_candidates_.clear();
    for (auto& [id, seq] : sequences_) {
      if (!seq.pending_active) continue;
      for (auto it = seq.pending_chosen_ranked.rbegin(); it != seq.pending_chosen_ranked.rend();
           ++it) {
        const int32_t p = *it;
        const PageId page = seq.pages[p];
        if (is_resident(seq, p) || store_.slot_of(page) < 0 || !store_.sealed(page)) continue;
        if (&seq == self &&
            std::binary_search(leaving_pending_.begin(), leaving_pending_.end(), p)) {
          continue;
        }
        give_way_candidates_.push_back({&seq, p, page});
      }
    }
    // The candidates grouped by page, to count the sets in flight that hold each.
    give_way_by_page_.assign(give_way_candidates_.begin(), give_way_candidates_.end());
    std::stable_sort(give_way_by_page_.begin(), give_way_by_page_.end(),
                     [](const GiveWay& a, const GiveWay& b) { return a.page_id < b.page_id; });
    int64_t freed = 0;
    for (const GiveWay& c : give_way_candidates_) {
      if (freed == want) break;
      auto [first, last] = std::equal_range(
          give_way_by_page_.begin(), give_way_by_page_.end(), c,
          [](const GiveWay& a, const GiveWay& b) { return a.page_id < b.page_id; });
      if (first->seq == nullptr) continue;  // this page was decided already
      if (last - first == store_.pins(c.page_id)) {
        give_way_.insert(give_way_.end(), first, last);
        ++freed;
      }
      for (auto it = first; it != last; ++it) it->seq = nullptr;
    }
    return freed;
  }

  // Applies plan_give_way: the pages leave their sets in flight; their slots become evictable (a
  // copy still in flight into one finishes before the slot is reused: take_slot waits for it).
  void apply_give_way() noexcept {
    for (const GiveWay& g : give_way_) {
      Sequence& seq = *g.seq;
      store_.unpin(seq.pages[g.page]);
      auto it = std::lower_bound(seq.pending.begin(), seq.pending.end(), g.page);
      if (it != seq.pending.end() && *it == g.page) seq.pending.erase(it);
      it = std::lower_bound(seq.pending_chosen.begin(), seq.pending_chosen.end(), g.page);
      if (it != seq.pending_chosen.end() && *it == g.page) seq.pending_chosen.erase(it);
      std::erase(seq.pending_chosen_ranked, g.page);
    }
    give_way_.clear();
  }

  // Stages the seal of the partial tail page of a history of `old_len` tokens as `kv` (append's)
  // fills it; *cell receives the mirror cell (-1 on failure).
  Status stage_tail_seal(Sequence& seq, int64_t old_len, const std::byte* kv,
                         int64_t* cell) noexcept {
    *cell = -1;
    if constexpr (kCanStream) {
      const PageId tail = seq.pages[chunker_.page_of_token(old_len)];
      return store_.stage_seal(tail, chunker_.offset_in_page(old_len), kv, cell);
    }
    return Status::kOk;
  }

  void cancel_tail_seal(int64_t cell) noexcept {
    if constexpr (kCanStream) {
      if (cell >= 0) store_.cancel_seal(cell);
    }
  }

  // With `stream`, writes the new full pages of [old_len, new_len) that do not join the resident
  // set (`after` does not force them) straight from `kv` into the mirror, as page records without
  // a slot, into streamed_. On failure they are released again and the status returned.
  Status stream_pages(int64_t old_len, int64_t new_len, const ForcedPages& after, bool stream,
                      const std::byte* kv) noexcept {
    streamed_.clear();
    if constexpr (kCanStream) {
      if (!stream) return Status::kOk;
      const int64_t page_tokens = chunker_.page_tokens();
      const int64_t token_bytes = int64_t{config_.num_layers} * config_.bytes_per_token_per_layer;
      for (int64_t p = chunker_.num_pages(old_len); p < chunker_.num_pages(new_len); ++p) {
        if (after.contains(p))
          continue;  // unforced pages are full: p < suffix_begin < num_pages - 1
        const PageId page = store_.create_page();  // records reserved by the caller
        int64_t cell = -1;
        if (Status s =
                store_.stage_seal(page, 0, kv + (p * page_tokens - old_len) * token_bytes, &cell);
            s != Status::kOk) {
          store_.release(page);
          for (PageId q : streamed_) store_.release(q);
          streamed_.clear();
          return s;
        }
        store_.commit_seal(page, cell);
        streamed_.push_back(page);
      }
    }
    return Status::kOk;
  }

  void write_view(const ViewBuffers& view) noexcept {
    // No format asked for: an engine that builds its views on the device from its own table.
    if (view.indptr == nullptr && view.slot_lists == nullptr && view.block_table == nullptr) return;
    int64_t nnz = 0;
    const auto num_batch = static_cast<int64_t>(batch_.size());
    for (int64_t b = 0; b < num_batch; ++b) {
      const Sequence& seq = *batch_[b];
      const std::vector<int32_t>& set = seq.resident;
      const auto listed = static_cast<int64_t>(set.size());
      // One slot lookup per listed page feeds every format asked for (the per-step hot loop).
      int32_t* csr_row = view.indptr != nullptr ? view.indices + nnz : nullptr;
      int32_t* list_row =
          view.slot_lists != nullptr ? view.slot_lists + b * view.slot_list_width : nullptr;
      int32_t* table_row =
          view.block_table != nullptr ? view.block_table + b * view.block_table_width : nullptr;
      if (table_row != nullptr) std::fill(table_row, table_row + view.block_table_width, -1);
      const PageId* pages = seq.pages.data();
      for (int64_t i = 0; i < listed; ++i) {
        const int32_t p = set[i];
        const int32_t slot = store_.slot_of(pages[p]);
        if (csr_row != nullptr) csr_row[i] = slot;
        if (list_row != nullptr) list_row[i] = slot;
        if (table_row != nullptr) table_row[p] = slot;
      }
      if (csr_row != nullptr) {
        view.indptr[b] = static_cast<int32_t>(nnz);
        nnz += listed;
        view.last_page_len[b] = chunker_.last_page_len(seq.num_tokens);
      }
      if (list_row != nullptr) std::fill(list_row + listed, list_row + view.slot_list_width, -1);
    }
    if (view.indptr != nullptr) {
      view.indptr[num_batch] = static_cast<int32_t>(nnz);
      std::fill(view.indices + nnz, view.indices + view.indices_capacity, -1);
    }
  }

  CacheConfig config_;
  ChunkerT chunker_;
  ScorerT scorer_;
  PolicyT policy_;
  StoreT store_;
  std::unordered_map<SeqId, Sequence> sequences_;
  std::vector<Sequence*> batch_;
  std::vector<float> scores_;
  detail::SelectionScratch scratch_;
  std::vector<int32_t> sorted_next_;
  std::vector<int32_t> leaving_;          // scratch of plan_leaving / apply_leaving
  std::vector<int32_t> leaving_pending_;  // the same for the set in flight
  struct GiveWay {
    Sequence* seq;   // the set in flight's sequence
    int32_t page;    // its logical page
    PageId page_id;  // the page record
  };
  std::vector<GiveWay> give_way_;  // scratch of plan_give_way / apply_give_way
  std::vector<GiveWay> give_way_candidates_, give_way_by_page_;  // scratch of plan_give_way
  std::vector<PageId> streamed_;                                 // scratch of stream_pages
  uint64_t epoch_ = 0;
  uint64_t last_version_ = 0;  // see touch()
  int64_t refreshes_ = 0;
  int64_t capacity_refusals_ = 0;
  int64_t recall_errors_ = 0;
  int64_t corrupt_recalls_ = 0;
};

}  // namespace lsa
