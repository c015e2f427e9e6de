#include "synthetic_tasks.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "draws.hpp"
#include "error.hpp"
#include "haystack.hpp"
#include "tokenizer.hpp"

namespace lsa_indexer {
namespace {

using lsa_decode::Draws;

template <class T>
const T& pick(const std::vector<T>& v, Draws& draws) {
  return v[static_cast<size_t>(draws.below(v.size()))];
}

std::string number(Draws& draws, int digits) {
  uint64_t lo = 1;
  for (int i = 1; i < digits; ++i) lo *= 10;
  return fmt::format("{}", lo + draws.below(9 * lo));
}

const std::vector<std::string> kColours = {"red",  "blue",   "green", "yellow", "purple",
                                           "grey", "orange", "white", "brown",  "pink"};
const std::vector<std::string> kItems = {"buttons", "candles", "spoons", "pencils", "shells",
                                         "stamps",  "ribbons", "nails",  "cards",   "beads"};
const std::vector<std::string> kPlaces = {"bookcase",   "stove",       "curtain",   "staircase",
                                          "barn door",  "garden wall", "old piano", "wardrobe",
                                          "woodpile",   "attic stairs"};
const std::vector<std::string> kStreets = {"Mill",   "Bridge", "Orchard", "Chapel",  "Market",
                                           "Tanner", "Willow", "Quarry",  "Harbour", "Linden"};
const std::vector<std::string> kAnimals = {"heron",  "otter", "badger", "falcon", "lynx",
                                           "beaver", "moose", "ferret", "gecko",  "bison"};
const std::vector<std::string> kDishes = {"plum cake", "onion soup", "barley bread",
                                          "pea stew",  "fig tart",   "apple pie"};
const std::vector<std::string> kIngredients = {"flour", "butter", "sugar", "oats", "honey", "salt"};
const std::vector<std::string> kMonths = {"January", "March",   "April",    "June",
                                          "August",  "October", "November", "December"};

// One note: its sentence, the question about it, the answer prefix and the answer.
struct Note {
  std::string sentence, question, prefix, answer;
};

// Templates 0-4 are the classic set (NoteStyle::kClassic); kVaried draws from all of them.
constexpr uint64_t kClassicKinds = 5;
constexpr uint64_t kNoteKinds = 14;

// A note of template `kind`, or of one drawn (after its name) from the first `kinds` templates
// when kind < 0; its names, objects and numbers drawn. At most one draw per expression: C++
// leaves the order of operands unspecified, and g++ takes them right to left; the statements
// keep the order g++ gave the shipped indexer's data, on any compiler.
Note make_note(Draws& draws, int64_t kind, uint64_t kinds) {
  const std::string& name = pick(SyntheticVocabulary::names(), draws);
  switch (kind >= 0 ? static_cast<uint64_t>(kind) : draws.below(kinds)) {
    case 0: {
      const std::string second = number(draws, 4);
      const std::string code = number(draws, 4) + "-" + second;
      return {fmt::format("{}'s locker combination is {}.", name, code),
              fmt::format("What is {}'s locker combination?", name),
              fmt::format("{}'s locker combination is", name), code};
    }
    case 1: {
      const std::string ticket = number(draws, 6);
      return {fmt::format("Agent {} was given ticket number {}.", name, ticket),
              fmt::format("Which ticket number was agent {} given?", name),
              fmt::format("Agent {} was given ticket number", name), ticket};
    }
    case 2: {
      const std::string& colour = pick(kColours, draws);
      const std::string& item = pick(kItems, draws);
      const std::string count = number(draws, 3);
      return {fmt::format("The {} chest in the cellar holds {} {}.", colour, count, item),
              fmt::format("How many {} does the {} chest in the cellar hold?", item, colour),
              fmt::format("The {} chest in the cellar holds", colour), count + " " + item};
    }
    case 3: {
      const std::string& city = pick(SyntheticVocabulary::cities(), draws);
      const std::string extension = number(draws, 4);
      return {fmt::format("The harbour office of {} answers at extension {}.", city, extension),
              fmt::format("At which extension does the harbour office of {} answer?", city),
              fmt::format("The harbour office of {} answers at extension", city), extension};
    }
    case 4: {
      const std::string& thing = pick(SyntheticVocabulary::things(), draws);
      const std::string& place = pick(kPlaces, draws);
      return {fmt::format("{} hid the {} behind the {}.", name, thing, place),
              fmt::format("Where did {} hide the {}?", name, thing),
              fmt::format("{} hid the {}", name, thing), "behind the " + place};
    }
    case 5: {
      const std::string& street = pick(kStreets, draws);
      const std::string line = number(draws, 4);
      const std::string exchange = number(draws, 3);
      const std::string phone = number(draws, 3) + "-" + exchange + "-" + line;
      return {fmt::format("The bakery on {} Street can be reached at {}.", street, phone),
              fmt::format("At which number can the bakery on {} Street be reached?", street),
              fmt::format("The bakery on {} Street can be reached at", street), phone};
    }
    case 6: {
      const std::string& thing = pick(SyntheticVocabulary::things(), draws);
      const std::string serial = number(draws, 8);
      return {fmt::format("The serial number stamped on {}'s {} reads {}.", name, thing, serial),
              fmt::format("What does the serial number stamped on {}'s {} read?", name, thing),
              fmt::format("The serial number stamped on {}'s {} reads", name, thing), serial};
    }
    case 7: {
      const std::string& colour = pick(kColours, draws);
      const std::string digits = number(draws, 3);
      const std::string word = pick(kAnimals, draws) + digits;
      return {fmt::format("The password for the {} gate is {}.", colour, word),
              fmt::format("What is the password for the {} gate?", colour),
              fmt::format("The password for the {} gate is", colour), word};
    }
    case 8: {
      const std::string& month = pick(kMonths, draws);
      const uint64_t year = 1800 + draws.below(220);
      const uint64_t day = 10 + draws.below(19);
      const std::string date = fmt::format("{} {}, {}", month, day, year);
      return {fmt::format("{} signed the lease on {}.", name, date),
              fmt::format("On what date did {} sign the lease?", name),
              fmt::format("{} signed the lease on", name), date};
    }
    case 9: {
      const std::string& dish = pick(kDishes, draws);
      const std::string& ingredient = pick(kIngredients, draws);
      const std::string grams = number(draws, 3);
      return {fmt::format("The recipe for {} needs {} grams of {}.", dish, grams, ingredient),
              fmt::format("How many grams of {} does the recipe for {} need?", ingredient, dish),
              fmt::format("The recipe for {} needs", dish), grams + " grams of " + ingredient};
    }
    case 10: {
      const std::string& city = pick(SyntheticVocabulary::cities(), draws);
      const std::string account = number(draws, 9);
      return {fmt::format("{} keeps account {} at the bank in {}.", name, account, city),
              fmt::format("Which account does {} keep at the bank in {}?", name, city),
              fmt::format("{} keeps account", name), account};
    }
    case 11: {
      const std::string digits = number(draws, 3);
      const std::string room = std::string(1, static_cast<char>('A' + draws.below(8))) + digits;
      return {fmt::format("Professor {} teaches in room {}.", name, room),
              fmt::format("In which room does Professor {} teach?", name),
              fmt::format("Professor {} teaches in room", name), room};
    }
    case 12: {
      const std::string& colour = pick(kColours, draws);
      const std::string& animal = pick(kAnimals, draws);
      return {fmt::format("The code word of the {} team is {}.", colour, animal),
              fmt::format("What is the code word of the {} team?", colour),
              fmt::format("The code word of the {} team is", colour), animal};
    }
    default: {
      const std::string& city = pick(SyntheticVocabulary::cities(), draws);
      const std::string weight = number(draws, 4);
      return {fmt::format("The crate shipped to {} weighed {} kilograms.", city, weight),
              fmt::format("How much did the crate shipped to {} weigh?", city),
              fmt::format("The crate shipped to {} weighed", city), weight + " kilograms"};
    }
  }
}

// The instruction before the text: the first (kClassic) or one of them (kVaried).
const std::vector<std::string> kInstructions = {
    "Read the passage below. A few short notes are mixed into it; afterwards you will be asked "
    "about one of them.",
    "Below is a long passage with some facts slipped in between its verses. Keep track of them, "
    "a question about one follows.",
    "The text that follows hides several short records. Note them carefully; you will have to "
    "recall one at the end.",
};

void append(std::vector<int32_t>& out, const std::vector<int32_t>& more) {
  out.insert(out.end(), more.begin(), more.end());
}

}  // namespace

const std::vector<std::string>& SyntheticVocabulary::names() {
  static const std::vector<std::string> v = {
      "Alice", "Boris",  "Clara", "Dmitri", "Elena",   "Farid", "Greta",  "Hugo",  "Ingrid",
      "Jonas", "Kenji",  "Lena",  "Marco",  "Nadia",   "Oskar", "Priya",  "Quinn", "Rosa",
      "Sven",  "Tamara", "Umar",  "Vera",   "Wilhelm", "Ximena", "Yusuf", "Zora"};
  return v;
}

const std::vector<std::string>& SyntheticVocabulary::cities() {
  static const std::vector<std::string> v = {"Lisbon", "Oslo",   "Montreal", "Nairobi", "Kyoto",
                                             "Lima",   "Dublin", "Hanoi",    "Bergen",  "Perth",
                                             "Quito",  "Tallinn", "Valencia", "Zagreb", "Adelaide",
                                             "Bogota"};
  return v;
}

const std::vector<std::string>& SyntheticVocabulary::things() {
  static const std::vector<std::string> v = {"ledger", "medal",  "wallet", "diary",  "hammer",
                                             "letter", "teapot", "scarf",  "sketch", "ring"};
  return v;
}

std::vector<std::string> SyntheticVocabulary::all_words() {
  std::vector<std::string> v = names();
  for (const auto* list : {&cities(), &things(), &kColours, &kItems, &kPlaces, &kStreets, &kAnimals,
                           &kDishes, &kIngredients, &kMonths}) {
    v.insert(v.end(), list->begin(), list->end());
  }
  return v;
}

SyntheticDoc make_synthetic_doc(const lsa_decode::Tokenizer& tokenizer,
                                const lsa_decode::Haystack& text, int64_t num_tokens,
                                int32_t max_notes, uint64_t seed, NoteStyle style) {
  if (max_notes < 1) throw lsa_decode::DecodeError("a synthetic document needs at least one note");
  Draws draws(lsa_decode::mix64(seed));
  const auto num_notes = static_cast<int32_t>(1 + draws.below(static_cast<uint64_t>(max_notes)));
  std::vector<Note> notes;
  if (style == NoteStyle::kClassic) {
    for (int32_t k = 0; k < num_notes; ++k) notes.push_back(make_note(draws, -1, kClassicKinds));
  } else {
    // Half the documents repeat one template with other names and numbers, as a multi-key
    // retrieval does; the rest mix templates. No two notes are asked about the same way (every
    // template has at least 10 distinct questions; past 64 tries, notes mix templates).
    const bool one_kind = draws.below(2) == 0;
    const auto doc_kind = static_cast<int64_t>(draws.below(kNoteKinds));
    for (int attempt = 0; static_cast<int32_t>(notes.size()) < num_notes; ++attempt) {
      Note n = make_note(
          draws,
          one_kind && attempt < 64 ? doc_kind : static_cast<int64_t>(draws.below(kNoteKinds)),
          kNoteKinds);
      if (std::none_of(notes.begin(), notes.end(),
                       [&](const Note& m) { return m.question == n.question; })) {
        notes.push_back(std::move(n));
      }
    }
  }

  constexpr std::string_view kMarker = "\x01lsa-indexer\x01";
  const std::string chat = lsa_decode::Tokenizer::chat_prompt({{"user", std::string(kMarker)}});
  const size_t at = chat.find(kMarker);
  const std::string header = chat.substr(0, at), footer = chat.substr(at + kMarker.size());

  std::vector<int32_t> head = tokenizer.encode(header, /*parse_special=*/true);
  const std::string& instruction =
      style == NoteStyle::kClassic ? kInstructions[0] : pick(kInstructions, draws);
  append(head, tokenizer.encode(instruction + "\n\n", false));
  std::vector<int32_t> tail = tokenizer.encode("\n\n" + notes[0].question, false);
  append(tail, tokenizer.encode(footer, /*parse_special=*/true));
  append(tail, tokenizer.encode(notes[0].prefix, false));
  const auto answer_offset = static_cast<int64_t>(tail.size());
  append(tail, tokenizer.encode(" " + notes[0].answer + ".", false));
  append(tail, tokenizer.encode("<|im_end|>", /*parse_special=*/true));
  std::vector<std::vector<int32_t>> note_ids;
  int64_t note_tokens = 0;
  for (const Note& n : notes) {
    note_ids.push_back(tokenizer.encode("\n" + n.sentence + "\n", false));
    note_tokens += static_cast<int64_t>(note_ids.back().size());
  }
  const int64_t body =
      num_tokens - static_cast<int64_t>(head.size() + tail.size()) - note_tokens;
  if (body < 16) {
    throw lsa_decode::DecodeError(fmt::format(
        "a synthetic document of {} tokens is too short for its notes and question", num_tokens));
  }
  std::vector<int64_t> bounds;
  const std::vector<int32_t> hay = text.tokens(
      static_cast<int64_t>(draws.below(static_cast<uint64_t>(text.num_pieces()))), body, &bounds);
  std::vector<std::pair<int64_t, size_t>> places;  // (text offset, note)
  for (size_t k = 0; k < notes.size(); ++k) {
    places.emplace_back(bounds[static_cast<size_t>(draws.below(bounds.size()))], k);
  }
  std::stable_sort(places.begin(), places.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });

  SyntheticDoc doc;
  doc.tokens = std::move(head);
  doc.note_positions.resize(notes.size());
  int64_t done = 0;
  for (const auto& [offset, k] : places) {
    doc.tokens.insert(doc.tokens.end(), hay.begin() + done, hay.begin() + offset);
    done = offset;
    doc.note_positions[k] = static_cast<int64_t>(doc.tokens.size());
    append(doc.tokens, note_ids[k]);
  }
  doc.tokens.insert(doc.tokens.end(), hay.begin() + done, hay.end());
  doc.question_start = static_cast<int64_t>(doc.tokens.size());
  doc.answer_start = doc.question_start + answer_offset;
  append(doc.tokens, tail);
  doc.question = notes[0].question;
  doc.answer = notes[0].answer;
  return doc;
}

}  // namespace lsa_indexer
