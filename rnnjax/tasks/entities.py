"""Named entities: a CoNLL-2003 reader, a generated news corpus with held-out names,
word and tag vocabularies, and the padded arrays a tagger reads.

Tags are BIO2 over four types, as in CoNLL-2003: PER (people), LOC (places), ORG
(organisations) and MISC (nationalities, events). `B-X` begins an entity of type X,
`I-X` continues it, `O` is outside every entity.

The generated corpus (`generated_entities`) fills news-like sentence templates
("{PER} visited {LOC} last week .") with names. Each type's names are split, by the
seed, into names for training and names held out; the held-out ones, with names made
up from syllables ("Port Velmara", "Dorvik Bank"), fill the *unseen* parts of
validation and test, whose entities never occur in training (each part its own).
The *seen* parts are new sentences whose every entity occurs in training with the
same type. Organisations and events are also built from each part's own places,
surnames and nationalities ("Bank of Lima", "Okafor Motors", "Kenyan Grand Prix"),
so many entities span several words and B-/I- matter. So a tagger that only
memorises the training entities does well on the seen part and fails on the unseen
one, where it must read the name's shape (capitals, suffixes) and its context.
Some names are deliberately ambiguous: "Jordan" and "Washington" are people and
places, "Liverpool" a city and a club, "Ford" a person and a company, and "May",
"April" and "June" are both first names (PER) and months (O); these are always
training names, and only the context gives their tag.

>>> to_bio2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG"])
['B-PER', 'I-PER', 'O', 'B-LOC', 'B-LOC', 'B-ORG']
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rnnjax.tasks.shakespeare import CharVocab
from rnnjax.tasks.vocab import WordVocab

#: a sentence: its tokens and their BIO2 tags, of equal length
Sentence = tuple[tuple[str, ...], tuple[str, ...]]
TYPES = ("PER", "LOC", "ORG", "MISC")
#: the tags of the generated corpus, in id order (O is 0)
TAGS = ("O", *(f"{p}-{t}" for t in TYPES for p in "BI"))
_TAG = re.compile(r"O|[BI]-\S+")


# -- BIO tags and the CoNLL reader ---------------------------------------------------------
def to_bio2(tags) -> list[str]:
    """IOB1 or BIO2 tags as BIO2: an `I-X` that does not continue an entity of type X
    (after `O`, after another type, or first) begins one, so it becomes `B-X`."""
    out = []
    for i, tag in enumerate(tags):
        previous = tags[i - 1] if i else "O"
        if tag.startswith("I-") and (previous == "O" or previous[2:] != tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
    return out


def is_bio2(tags) -> bool:
    """True when every tag is O, B-X or I-X and every I-X follows B-X or I-X."""
    previous = "O"
    for tag in tags:
        if not _TAG.fullmatch(tag):
            return False
        if tag.startswith("I-") and (previous == "O" or previous[2:] != tag[2:]):
            return False
        previous = tag
    return True


def read_conll(path) -> list[Sentence]:
    """The sentences of a CoNLL-2003-format file: one token a line, the token in the
    first column and its NER tag in the last (whitespace-separated), a blank line
    between sentences; `-DOCSTART-` lines are skipped. IOB1 tags (the original
    CoNLL-2003 files) and BIO2 tags are both read, and returned as BIO2."""
    path = Path(path)
    sentences, tokens, tags = [], [], []

    def close():
        if tokens:
            sentences.append((tuple(tokens), tuple(to_bio2(tags))))
            tokens.clear()
            tags.clear()

    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            columns = line.split()
            if not columns or columns[0] == "-DOCSTART-":
                close()
                continue
            if len(columns) < 2 or not _TAG.fullmatch(columns[-1]):
                raise ValueError(f"{path}:{number}: a token line must be 'TOKEN ... TAG' "
                                 f"with TAG O, B-X or I-X, got {line.rstrip()!r}")
            tokens.append(columns[0])
            tags.append(columns[-1])
    close()
    return sentences


def entity_spans(tags) -> list[tuple[str, int, int]]:
    """The entities of BIO2 tags as (type, first, last) token positions, inclusive; an
    I-X that continues no entity begins one (as conlleval reads it)."""
    spans = []
    for i, tag in enumerate(tags):
        kind = tag[2:]
        if tag.startswith("I-") and spans and spans[-1][2] == i - 1 and spans[-1][0] == kind:
            spans[-1] = (kind, spans[-1][1], i)
        elif tag != "O":
            spans.append((kind, i, i))
    return spans


# -- vocabularies and arrays ---------------------------------------------------------------
def tag_names(sentences) -> tuple[str, ...]:
    """The tags of `sentences` in id order: O first, then B-X, I-X for each type X in
    sorted order (both for every type seen, so a tagger can emit either)."""
    types = sorted({t[2:] for _, tags in sentences for t in tags if t != "O"})
    return ("O", *(f"{p}-{t}" for t in types for p in "BI"))


def char_vocab(sentences) -> CharVocab:
    """The characters of the words of `sentences` (see `shakespeare.CharVocab`)."""
    return CharVocab.from_text("".join(w for tokens, _ in sentences for w in tokens))


class TaggedArrays(NamedTuple):
    """Sentences as zero-padded arrays. words int32 [N, T] (word ids), chars int32
    [N, T, L] (character ids of each word, its first L characters), word_lengths int32
    [N, T] (characters read per word, 0 past a sentence's length), lengths int32 [N]
    (words per sentence), tags int32 [N, T] (tag ids, 0 past a length)."""

    words: np.ndarray
    chars: np.ndarray
    word_lengths: np.ndarray
    lengths: np.ndarray
    tags: np.ndarray


def encode_sentences(sentences, words: WordVocab, chars: CharVocab, tags: tuple[str, ...],
                     max_chars: int | None = None, steps: int | None = None) -> TaggedArrays:
    """`TaggedArrays` of `sentences`, padded to `steps` words (default: the longest
    sentence) and to the longest word, capped at `max_chars` characters (longer words
    keep their first `max_chars`)."""
    if not sentences:
        raise ValueError("sentences must hold at least one sentence, got none")
    tag_ids = {t: i for i, t in enumerate(tags)}
    unknown = sorted({t for _, ts in sentences for t in ts} - set(tag_ids))
    if unknown:
        raise ValueError(f"sentences hold tags {unknown} that are not in tags {tags}")
    longest = max(len(tokens) for tokens, _ in sentences)
    steps = longest if steps is None else steps
    if steps < longest:
        raise ValueError(f"steps must be at least the longest sentence ({longest}), "
                         f"got {steps}")
    width = max(len(w) for tokens, _ in sentences for w in tokens)
    width = width if max_chars is None else min(width, max_chars)
    n = len(sentences)
    out = TaggedArrays(np.zeros((n, steps), np.int32), np.zeros((n, steps, width), np.int32),
                       np.zeros((n, steps), np.int32), np.zeros(n, np.int32),
                       np.zeros((n, steps), np.int32))
    for row, (tokens, ts) in enumerate(sentences):
        if len(tokens) != len(ts):
            raise ValueError(f"sentence {row} has {len(tokens)} tokens but {len(ts)} tags")
        out.lengths[row] = len(tokens)
        out.words[row, :len(tokens)] = words.encode(tokens)
        out.tags[row, :len(tokens)] = [tag_ids[t] for t in ts]
        for col, word in enumerate(tokens):
            ids = chars.encode(word)[:width]
            out.chars[row, col, :len(ids)] = ids
            out.word_lengths[row, col] = len(ids)
    return out


# -- the generated corpus ------------------------------------------------------------------
#: sentence templates; a slot is {TYPE} or {TYPE2} (a second, independent filler), with
#: entity types PER, LOC, ORG, NAT (MISC: nationality) and EVENT (MISC: event), and
#: untagged fillers NUM, SCORE, MONTH and DAY
TEMPLATES = (
    "{PER} visited {LOC} last week .",
    "{PER} , who works for {ORG} , lives in {LOC} .",
    "{ORG} opened a new office in {LOC} on {DAY} .",
    "The {NAT} delegation met {PER} in {LOC} .",
    "{PER} won the {EVENT} in {NUM} .",
    "Shares of {ORG} fell {NUM} percent in {MONTH} .",
    "{PER} told {ORG} that talks with {LOC} would resume in {MONTH} .",
    "{ORG} beat {ORG2} {SCORE} - {SCORE2} in {LOC} on {DAY} .",
    "{PER} and {PER2} arrived in {LOC} for the {EVENT} .",
    "The {EVENT} will be held in {LOC} next year .",
    "{LOC} and {LOC2} signed a trade agreement in {MONTH} .",
    "{PER} , a {NAT} citizen , was born in {LOC} .",
    "According to {ORG} , prices in {LOC} rose by {NUM} percent .",
    "{PER} joined {ORG} as chief executive in {MONTH} .",
    "Police in {LOC} said {PER} was arrested on {DAY} .",
    "{ORG} said it would buy {ORG2} for {NUM} million dollars .",
    "The {NAT} government said {PER} would travel to {LOC} .",
    "{PER} scored twice as {ORG} won the {EVENT} .",
    "Fans in {LOC} celebrated after {ORG} reached the final .",
    "{PER} , spokesman for {ORG} , declined to comment .",
    "Flights between {LOC} and {LOC2} were cancelled on {DAY} .",
    "{PER} met {NAT} officials in {LOC} on {DAY} .",
    "{ORG} reported a profit of {NUM} million in {MONTH} .",
    "{PER} will represent {LOC} at the {EVENT} .",
    "The {NAT} team arrived in {LOC} on {DAY} .",
    "{PER} said {ORG} had no plans to leave {LOC} .",
    "In {MONTH} , {PER} moved from {LOC} to {LOC2} .",
    "{ORG} and {ORG2} agreed to merge , {PER} said .",
    "Thousands of {NAT} workers marched through {LOC} .",
    "{PER} of {ORG} spoke to reporters in {LOC} .",
    "{LOC} beat {LOC2} {SCORE} - {SCORE2} in the {EVENT} .",
    "{PER} thanked {PER2} after the match in {LOC} on {DAY} .",
    "Rain delayed the {EVENT} in {LOC} on {DAY} .",
    "{PER} sold the {NAT} car to {PER2} in {MONTH} .",
    "Talks between {ORG} and {PER} ended in {LOC} on {DAY} .",
)
_SLOT_TAG = {"PER": "PER", "LOC": "LOC", "ORG": "ORG", "NAT": "MISC", "EVENT": "MISC"}

FIRST_NAMES = (
    "Adam Alice Amir Anna Boris Carlos Chen Clara Daniel David Diego Elena Emma Fatima "
    "Felix Hans Hiro Ines Ivan Jakob James Julia Karim Laura Leila Lucas Maria Marta "
    "Mehmet Nadia Oliver Olga Omar Pablo Pedro Priya Rafael Rosa Sara Simon Sofia Tomas "
    "Umar Vera Wei Yusuf Zara Kofi Ravi Ingrid Lars Nina Paolo Ahmed Mei Greta Hugo "
    "Irene Kenji Lena Marco Noor Oscar Petra Rania Stefan Tariq").split()
SURNAMES = (
    "Smith Mueller Garcia Rossi Tanaka Kowalski Nguyen Silva Ivanov Jensen Cohen Okafor "
    "Dubois Schmidt Johnson Martin Lopez Fischer Kim Park Novak Hansen Berg Costa Ferreira "
    "Moreau Weber Bauer Romano Petrov Kovacs Horvat Yilmaz Demir Sato Suzuki Mensah Owusu "
    "Haddad Nasser Larsen Lindqvist Morales Castillo Herrera Wagner Schulz Keller Brown "
    "Ortiz Varga Popescu Andersson Kaplan Rahman Molina Bianchi Nakamura Dimitrov").split()
PLACES = (
    "Paris Berlin Madrid Rome Tokyo Cairo Lagos Nairobi Lima Quito Oslo Vienna Prague "
    "Warsaw Athens Dublin Lisbon Moscow Beijing Seoul Delhi Mumbai Karachi Tehran Baghdad "
    "Ankara Istanbul Toronto Chicago Boston Denver Dallas Miami Seattle Brazil France "
    "Germany Italy Spain Japan Egypt Nigeria Kenya Peru Chile Norway Austria Poland Greece "
    "Ireland Portugal Russia China India Pakistan Iran Iraq Turkey Canada Mexico "
    "Argentina Colombia Ghana Vietnam Thailand Sweden Finland Denmark Belgium Hungary").split() + [
    "New South Wales", "Buenos Aires", "Hong Kong", "Sri Lanka", "New Zealand", "Costa Rica",
    "San Marino", "Rio de Janeiro", "Cape Town", "South Africa", "El Salvador", "Puerto Rico",
    "Saudi Arabia", "North Carolina", "New Mexico", "Las Vegas", "Los Angeles", "Kuala Lumpur",
    "Abu Dhabi", "Tel Aviv", "New York", "Sao Paulo", "Addis Ababa", "Rhode Island",
    "West Bengal", "Baton Rouge", "South Korea"]
ORGANISATIONS = (
    "Reuters Siemens Toyota Nestle Ajax Juventus Barclays Microsoft NATO UNESCO Interpol "
    "Volvo Nokia Samsung Unilever Heineken Airbus Lufthansa Gazprom Petrobras FIFA UEFA "
    "OPEC Benfica Celtic Greenpeace Olympiacos Philips Danone Renault").split() + [
    "Real Madrid", "Manchester United", "General Motors", "Deutsche Bank", "Red Cross",
    "World Bank", "United Nations", "European Union", "Bank of England", "Goldman Sachs",
    "Bayern Munich", "Inter Milan", "Air France", "British Airways", "Amnesty International",
    "Human Rights Watch", "Federal Reserve", "Associated Press", "Royal Dutch Shell",
    "Red Star Belgrade", "Standard Chartered", "Aston Villa"]
NATIONALITIES = (
    "French German Italian Spanish Japanese Egyptian Nigerian Kenyan Peruvian Chilean "
    "Norwegian Austrian Polish Greek Irish Portuguese Russian Chinese Korean Indian "
    "Pakistani Iranian Iraqi Turkish Canadian Mexican Argentine Colombian Ghanaian "
    "Vietnamese Thai Swedish Finnish Danish Belgian Hungarian Brazilian Dutch British "
    "American Australian Swiss").split()
EVENTS = ["World Cup", "Olympic Games", "Tour de France", "Super Bowl", "Champions League",
          "Davis Cup", "Ryder Cup", "Africa Cup of Nations", "Copa America", "Giro d'Italia",
          "Stanley Cup", "Asian Games", "Commonwealth Games", "Nobel Peace Prize"]
#: names that fill slots of more than one type (single tokens; EVENT is MISC), always
#: training names
AMBIGUOUS = {
    "Jordan": ("PER", "LOC"), "Washington": ("PER", "LOC"), "Florence": ("PER", "LOC"),
    "Georgia": ("PER", "LOC"), "Victoria": ("PER", "LOC"), "Sydney": ("PER", "LOC"),
    "Houston": ("PER", "LOC"), "Lincoln": ("PER", "LOC"), "Chelsea": ("PER", "LOC", "ORG"),
    "Santos": ("PER", "LOC", "ORG"), "Liverpool": ("LOC", "ORG"),
    "Barcelona": ("LOC", "ORG"), "Ford": ("PER", "ORG"), "Dell": ("PER", "ORG"),
    "Ferrari": ("PER", "ORG"), "Disney": ("PER", "ORG"), "Wimbledon": ("LOC", "EVENT"),
}
#: first names that are also months (tagged O as months), always training names
MONTH_NAMES = ("April", "May", "June")
MONTHS = ("January February March April May June July August September October "
          "November December").split()
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
#: how often a PER, LOC or ORG slot of a seen sentence takes an ambiguous name
AMBIGUOUS_RATE = 0.15

_SYLLABLES = ("ka lo mi ra to ven sal dor bri tha nor qui zel mar vos pel dun fra gol sen "
              "ter bal chi rov an el is ur va ne om bek lun").split()
_MADE_UP_COUNT = 30   # made-up names per kind in each unseen part


class EntityCorpus(NamedTuple):
    """The generated corpus. `validation` and `test` are {"seen": [...], "unseen":
    [...]}: sentences over training names, and over names no training sentence holds."""

    train: list[Sentence]
    validation: dict[str, list[Sentence]]
    test: dict[str, list[Sentence]]


Names = dict[str, list[tuple[str, ...]]]   # slot (PER, LOC, ORG, NAT, EVENT) -> entities


def generated_entities(seed: int = 0, train: int = 2000, validation: int = 200,
                       test: int = 500, held_out: float = 0.4) -> EntityCorpus:
    """A corpus of template sentences with BIO2 tags; the same seed gives the same corpus.

    `train` sentences; `validation` and `test` sentences in each of their two parts.
    `held_out` is the fraction of each list of real names kept out of training (split
    evenly between validation and test, which also get names made up from
    syllables). Every entity of a seen part occurs, with its type, in training, and
    no seen sentence is a training sentence; no entity of an unseen part occurs in
    training or in the other unseen part.
    """
    for name, value in (("train", train), ("validation", validation), ("test", test)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not 0.0 < held_out < 1.0:
        raise ValueError(f"held_out must lie in (0, 1), got {held_out!r}")
    rng = np.random.default_rng(seed)
    names = _split_names(rng, held_out)
    ambiguous = {slot: [(w,) for w in sorted(AMBIGUOUS) if slot in AMBIGUOUS[w]]
                 for slot in _SLOT_TAG}
    training = [_sentence(rng, names["train"], ambiguous) for _ in range(train)]
    # the seen parts draw on the entities training holds, with the type it gives them
    spans = {(kind, tokens[a:b + 1]) for tokens, tags in training
             for kind, a, b in entity_spans(tags)}
    seen = {slot: [e for e in entities if (_SLOT_TAG[slot], e) in spans]
            for slot, entities in names["train"].items()}
    seen_ambiguous = {slot: [e for e in entities if (_SLOT_TAG[slot], e) in spans]
                      for slot, entities in ambiguous.items()}
    empty = sorted(slot for slot, entities in seen.items() if not entities)
    if empty:
        raise ValueError(f"train must be large enough for every slot to occur in training, "
                         f"got {train} sentences, in which no {', '.join(empty)} slot occurs")
    known = set(training)

    def part(count, names_, ambiguous_):
        made = []
        while len(made) < count:
            sentence = _sentence(rng, names_, ambiguous_)
            if sentence not in known:
                made.append(sentence)
        return made

    no_ambiguity = {slot: [] for slot in _SLOT_TAG}
    return EntityCorpus(
        training,
        {"seen": part(validation, seen, seen_ambiguous),
         "unseen": part(validation, names["validation"], no_ambiguity)},
        {"seen": part(test, seen, seen_ambiguous),
         "unseen": part(test, names["test"], no_ambiguity)})


def _split_names(rng, held_out: float) -> dict[str, Names]:
    """Training, validation and test names: each real list shuffled and cut, the held-out
    parts topped up with made-up names, people and composite names built within each
    part."""
    protected = set(AMBIGUOUS) | set(MONTH_NAMES)
    lists = {"first": FIRST_NAMES, "surnames": SURNAMES, "LOC": PLACES,
             "ORG": ORGANISATIONS, "NAT": NATIONALITIES, "EVENT": EVENTS}
    parts = {p: {} for p in ("train", "validation", "test")}
    for kind, values in lists.items():
        values = [v for v in values if v not in protected]
        order = rng.permutation(len(values))
        cut = round(len(values) * (1 - held_out))
        middle = cut + (len(values) - cut) // 2
        parts["train"][kind] = [values[i] for i in order[:cut]]
        parts["validation"][kind] = [values[i] for i in order[cut:middle]]
        parts["test"][kind] = [values[i] for i in order[middle:]]
    parts["train"]["first"] += list(MONTH_NAMES)
    taken = {w for part in parts.values() for values in part.values() for w in values}
    taken |= protected | set(MONTHS) | set(DAYS)
    for part in ("validation", "test"):
        for kind in lists:
            parts[part][kind] += _made_up(rng, kind, _MADE_UP_COUNT, taken)
    return {part: _entities(rng, values) for part, values in parts.items()}


def _made_up(rng, kind: str, count: int, taken: set[str]) -> list[str]:
    """`count` new names of one kind from syllables, none in `taken` (which grows)."""
    def word(syllables):
        return "".join(rng.choice(_SYLLABLES, syllables)).capitalize()

    makers = {
        "first": lambda: word(2) + rng.choice(["", "a", "o", "in"]),
        "surnames": lambda: word(2) + rng.choice(["", "son", "ova", "ez", "ini", "berg", "ski"]),
        "LOC": lambda: rng.choice([
            word(2) + rng.choice(["ford", "burg", "ton", "ville", "stan", "ia", "grad"]),
            rng.choice(["Port", "New", "San", "Lake", "North"]) + " " + word(2),
            word(2) + " " + rng.choice(["Bay", "Springs", "Island"])]),
        "ORG": lambda: rng.choice([
            word(2) + " " + rng.choice(["Bank", "Group", "Airlines", "Telecom", "Energy"]),
            word(3).upper()[:4], word(2) + "tex"]),
        "NAT": lambda: word(2) + rng.choice(["ian", "ese", "ish", "i"]),
        "EVENT": lambda: word(2) + " " + rng.choice(["Cup", "Games", "Trophy", "Festival"]),
    }
    made = []
    while len(made) < count:
        name = str(makers[kind]())
        if name not in taken:
            taken.add(name)
            made.append(name)
    return made


def _entities(rng, values: dict[str, list[str]]) -> Names:
    """One part's entities as token tuples per slot: people (first name and surname, or
    the surname alone), and organisations and events also built from the part's own
    places, surnames and nationalities ("Bank of Lima", "Lima Marathon")."""
    first, surnames = values["first"], values["surnames"]
    places, nationalities = values["LOC"], values["NAT"]
    pick = lambda items, n: [items[i] for i in rng.permutation(len(items))[:n]]
    people = sorted({f"{first[i]} {surnames[j]}" for i, j in zip(
        rng.integers(len(first), size=3 * len(surnames)),
        rng.integers(len(surnames), size=3 * len(surnames)))}) + list(surnames)
    organisations = list(values["ORG"])
    organisations += [f"Bank of {p}" for p in pick(places, 6)]
    organisations += [f"University of {p}" for p in pick(places, 6)]
    organisations += [f"{s} {k}" for s, k in zip(pick(surnames, 8),
                                                    rng.choice(["Motors", "Holdings"], 8))]
    events = list(values["EVENT"])
    events += [f"{p} Marathon" for p in pick(places, 5)]
    events += [f"{n} Grand Prix" for n in pick(nationalities, 5)]
    entities = {"PER": people, "LOC": places, "ORG": organisations, "NAT": nationalities,
                "EVENT": events}
    return {slot: [tuple(v.split()) for v in vs] for slot, vs in entities.items()}


def _sentence(rng, names: Names, ambiguous: Names) -> Sentence:
    """One template filled: each slot by an ambiguous name (with probability
    AMBIGUOUS_RATE, where `ambiguous` has one for that slot) or one of `names`."""
    template = TEMPLATES[rng.integers(len(TEMPLATES))]
    tokens, tags = [], []
    for piece in template.split():
        slot = piece[1:-1].rstrip("2") if piece.startswith("{") else None
        if slot in _SLOT_TAG:
            use_ambiguous = ambiguous[slot] and rng.random() < AMBIGUOUS_RATE
            options = ambiguous[slot] if use_ambiguous else names[slot]
            entity = options[rng.integers(len(options))]
            tokens += entity
            tags += [f"B-{_SLOT_TAG[slot]}"] + [f"I-{_SLOT_TAG[slot]}"] * (len(entity) - 1)
            continue
        if slot is not None:
            piece = {"NUM": lambda: str(rng.integers(2, 100)),
                     "SCORE": lambda: str(rng.integers(0, 6)),
                     "MONTH": lambda: str(rng.choice(MONTHS)),
                     "DAY": lambda: str(rng.choice(DAYS))}[slot]()
        tokens.append(piece)
        tags.append("O")
    return tuple(tokens), tuple(tags)
