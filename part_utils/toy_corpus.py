"""The toy world's corpus: short facts about landmarks, cities and countries, plus induction sequences.

The facts tell the same stories as the spec's GPT-2 prompts ("The Eiffel tower is in the city of" ->
" Paris"). Some names are split by GPT-2's tokenizer into a " E" token and a continuation
(" E|iff|el", " E|ger", " E|ind|ho|ven", ...), and "iff" also follows other tokens (" J|iff|y",
" G|iff|ard"), so that knowing "iff" came after " E" is a real distinction the model must make: a
cross-token bigram, as in the spec's (" E" -> "iff") latent pair.

The induction sequences are BOS + distractors + r + r + ..., with r a run of distinct tokens drawn
from the facts' own vocabulary: the only way to predict the repeats is to find where the current token appeared
before and copy what came next, which is what induction heads do.

Everything here is pure Python and deterministic, so the training script and the course (which
computes "top activating contexts" for the toy world's latent cards) see the same text.
"""

from __future__ import annotations

import functools
import random

# (landmark, city, country). Lower-case "tower" follows the spec's prompt "The Eiffel tower is in Paris".
LANDMARKS: tuple[tuple[str, str, str], ...] = (
    ("Eiffel tower", "Paris", "France"),
    ("Louvre museum", "Paris", "France"),
    ("Colosseum", "Rome", "Italy"),
    ("Pantheon", "Rome", "Italy"),
    ("Leaning tower", "Pisa", "Italy"),
    ("Rialto bridge", "Venice", "Italy"),
    ("Big Ben clock", "London", "England"),
    ("Tower bridge", "London", "England"),
    ("Eton chapel", "Windsor", "England"),
    ("Brandenburg gate", "Berlin", "Germany"),
    ("Cologne cathedral", "Cologne", "Germany"),
    ("Ettal abbey", "Munich", "Germany"),
    ("Sagrada Familia", "Barcelona", "Spain"),
    ("Alhambra palace", "Granada", "Spain"),
    ("Ebro bridge", "Zaragoza", "Spain"),
    ("Eger castle", "Eger", "Hungary"),
    ("Parliament building", "Budapest", "Hungary"),
    ("Eindhoven tower", "Eindhoven", "Netherlands"),
    ("Rijksmuseum", "Amsterdam", "Netherlands"),
    ("Echternach abbey", "Echternach", "Luxembourg"),
    ("Eze garden", "Eze", "France"),
    ("Eiger bridge", "Grindelwald", "Switzerland"),
    ("Eilat reef", "Eilat", "Israel"),
    ("Empire State Building", "New York", "America"),
    ("Statue of Liberty", "New York", "America"),
    ("Golden Gate bridge", "San Francisco", "America"),
    ("Eureka tower", "Melbourne", "Australia"),
    ("Opera House", "Sydney", "Australia"),
    ("Edinburgh castle", "Edinburgh", "Scotland"),
    ("Great Pyramid", "Cairo", "Egypt"),
    ("Acropolis", "Athens", "Greece"),
    ("Kremlin", "Moscow", "Russia"),
    ("Forbidden City", "Beijing", "China"),
    ("Tokyo tower", "Tokyo", "Japan"),
    ("Taj Mahal", "Agra", "India"),
    ("Christ the Redeemer", "Rio", "Brazil"),
    ("Giffard fountain", "Lyon", "France"),
    ("Jiffy market", "Leeds", "England"),
    ("Riff theatre", "Dublin", "Ireland"),
    ("Biff diner", "Chicago", "America"),
)

# Templates for one fact. `{L}` is the landmark, `{C}` its city, `{K}` its country. The spec's
# prompts are among them, so "The Eiffel tower is in the city of" is completed by " Paris"; the same
# sentence with "the country of" is completed by " France", so the world tells a city from a country.
LANDMARK_TEMPLATES: tuple[str, ...] = (
    "The {L} is in the city of {C}.",
    "The {L} is in the country of {K}.",
    "The {L} is in {C}.",
    "The {L} is in {C}, {K}.",
    "The {L} stands in {C}.",
    "{C} is home to the {L}.",
    "The {L} is a famous landmark in {K}.",
    "Tourists visit the {L} in {C}.",
    "We saw the {L} when we went to {C}.",
    "The {L} is one of the sights of {C}.",
)
CITY_TEMPLATES: tuple[str, ...] = (
    "The city of {C} is in {K}.",
    "{C} is a city in {K}.",
    "{C} is in the country of {K}.",
)


def landmark_prompt(landmark: str, kind: str) -> str:
    """The prompt that asks for a landmark's city (`kind` "city") or its country ("country")."""
    return f"The {landmark} is in the {kind} of"


def fact_sentences() -> list[str]:
    """Every fact sentence, once each, in a fixed order."""
    sentences = [template.format(L=L, C=C, K=K) for (L, C, K) in LANDMARKS for template in LANDMARK_TEMPLATES]
    cities = dict.fromkeys((C, K) for (_, C, K) in LANDMARKS)  # ordered and deduplicated
    sentences += [template.format(C=C, K=K) for (C, K) in cities for template in CITY_TEMPLATES]
    return sentences


def corpus_texts(seed: int, n_texts: int = 2000, sentences_per_text: int = 3) -> list[str]:
    """`n_texts` documents of `sentences_per_text` random fact sentences each (no BOS; the model adds it)."""
    rng = random.Random(seed)
    sentences = fact_sentences()
    return [" ".join(rng.choices(sentences, k=sentences_per_text)) for _ in range(n_texts)]


@functools.cache
def corpus_token_ids() -> tuple[int, ...]:
    """Every GPT-2 token id the facts use, sorted, including the BOS token (the model's vocabulary)."""
    from part_utils.tokenizer import gpt2_tokenizer

    tokenizer = gpt2_tokenizer()
    ids = {tokenizer.bos_token_id}
    for sentence in fact_sentences():
        # A sentence opens a document (no space before it) or follows another (a space before it).
        ids.update(tokenizer.encode(sentence))
        ids.update(tokenizer.encode(" " + sentence))
    return tuple(sorted(ids))


@functools.cache
def _induction_pool() -> tuple[int, ...]:
    from part_utils.tokenizer import gpt2_tokenizer

    tokenizer = gpt2_tokenizer()
    return tuple(i for i in corpus_token_ids() if i != tokenizer.bos_token_id and tokenizer.decode([i]).strip().isalnum())


def induction_token_pool() -> list[int]:
    """The tokens induction sequences are drawn from: the facts' vocabulary, less BOS and punctuation."""
    return list(_induction_pool())


def induction_sequence(rng: random.Random, length: int, seq_len: int) -> list[int]:
    """BOS, a few distinct distractor tokens, then a run of `seq_len` distinct tokens repeated up to `length` tokens.

    The distractors matter: without them every token of the repeats has already been seen, and
    "copy any earlier token" is a cheap half-solution that delays the induction heads.
    """
    from part_utils.tokenizer import gpt2_tokenizer

    n_distractors = rng.randint(0, length - 1 - 2 * seq_len)
    tokens = rng.sample(_induction_pool(), n_distractors + seq_len)
    run = tokens[n_distractors:]
    body = tokens[:n_distractors] + run * (length // seq_len + 1)
    return [gpt2_tokenizer().bos_token_id, *body[: length - 1]]


@functools.cache
def _word_pool() -> tuple[int, ...]:
    """Induction tokens that are whole words (a leading space) and tokenize back to themselves inside a text."""
    from part_utils.tokenizer import gpt2_tokenizer

    tokenizer = gpt2_tokenizer()
    return tuple(i for i in _induction_pool() if (text := tokenizer.decode([i])).startswith(" ") and tokenizer.encode(text) == [i])


def repeated_texts(n_texts: int = 200, seed: int = 0, length: int = 32) -> list[str]:
    """Texts of a run of 3 to 12 random words repeated, like the induction sequences the world was trained on.

    The latent cards draw top activating contexts from them as well as from the facts: an attention
    latent that fires on repeats has its best contexts only in text that repeats.
    """
    from part_utils.tokenizer import gpt2_tokenizer

    rng = random.Random(seed)
    texts = []
    for _ in range(n_texts):
        run = rng.sample(_word_pool(), rng.randint(3, 12))
        texts.append(gpt2_tokenizer().decode((run * (length // len(run) + 1))[:length]))
    return texts


def card_texts() -> list[str]:
    """The texts the toy world's latent cards search for top activating contexts: the facts and repeated runs."""
    return fact_sentences() + repeated_texts()
