"""A small offline language detector and the response_language constraint.

`detect_language(text)` tells the 14 languages of `LANGUAGES` apart without any model or data
file. It first finds the text's dominant script, counting letters per Unicode script (a CJK
character counts as 3 letters: it carries about as much as a short word). Most scripts name
one language here: Cyrillic is Russian, Greek is Greek, Arabic script is Arabic, Devanagari is
Hindi, Hangul is Korean; Han characters are Japanese when kana make up at least a tenth of the
CJK characters, else Chinese. Latin-script text is scored against a profile per language: its
most frequent function words, plus letters peculiar to it (ñ, ß, ã, ...).

It answers None when it cannot tell: no letters, a Latin text with too few function words
(under 15% of its words) or a tie, or text whose letters are largely foreign to the candidate
language (Ukrainian "ї", Persian "پ", Polish "ł"), so that a language outside the list is not
passed off as one inside it.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

from chorus.checks.base import BaseConstraint

LanguageCode = Literal["en", "fr", "de", "es", "it", "pt", "nl", "ru", "zh", "ja", "ko", "ar",
                       "hi", "el"]
LANGUAGES: dict[str, str] = dict(zip(get_args(LanguageCode), (
    "English", "French", "German", "Spanish", "Italian", "Portuguese", "Dutch", "Russian",
    "Chinese", "Japanese", "Korean", "Arabic", "Hindi", "Greek"), strict=True))

_SCRIPTS: dict[str, re.Pattern[str]] = {
    "latin": re.compile(r"[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff]"),
    "cyrillic": re.compile(r"[\u0400-\u04ff]"),
    "greek": re.compile(r"[\u0370-\u03ff\u1f00-\u1fff]"),
    "arabic": re.compile(r"[\u0620-\u064a\u066e-\u06d3\u06fa-\u06ff\u0750-\u077f\ufb50-\ufdff"
                         r"\ufe70-\ufeff]"),
    "devanagari": re.compile(r"[\u0900-\u097f]"),
    "hangul": re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]"),
    "kana": re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]"),
    "han": re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df]"),
}
_CJK_WEIGHT = 3
_SCRIPT_LANGUAGE = {"cyrillic": "ru", "greek": "el", "arabic": "ar", "devanagari": "hi",
                    "hangul": "ko"}
# The alphabet each script's candidate language uses. More than a few letters of the script
# outside it means another language written in the same script (Ukrainian, Persian, Polish).
_ALPHABETS: dict[str, frozenset[str]] = {
    "latin": frozenset("abcdefghijklmnopqrstuvwxyzàâäæçéèêëîïôœùûüÿßñáíóúìòãõĳ"),
    "cyrillic": frozenset("абвгдеёжзийклмнопрстуфхцчшщъыьэюя"),
    "arabic": frozenset(map(chr, range(0x621, 0x64b))),
}
_FOREIGN_SHARE = 0.05

_FUNCTION_WORDS: dict[str, frozenset[str]] = {code: frozenset(text.split()) for code, text in {
    "en": """the and of to is in it that was for with as on are this be by at have has from or
        an not but they you we he she his her their which will would can there what all were
        been if do does my your our its than so about who when how these those i me a more also
        very into them had could should just any some because then out up him us let know""",
    "fr": """le la les de des du un une et est en que qui dans pour pas ne sur au aux avec ce
        cette ces il elle ils elles nous vous je son sa ses mais ou où plus par sont été être a
        à on y leur très aussi comme tout se lui fait l d c j qu n s m t était avait sans avez
        suis ai bien alors donc si""",
    "de": """der die das und ist nicht ein eine einen dem den des zu mit sich auf für von im es
        auch sie er wir ich du aber wie noch nach bei aus wenn dass oder sind war hat haben
        wird werden kann nur schon sehr um über vor zum zur diese dieser mein kein keine man
        als einem einer ihr ihre uns sein seine gibt bin bist habe hast wurde mir dir mich
        dich ihm ihn doch immer hier dann jetzt heute deshalb weil""",
    "es": """el la los las de del que y en un una es por con no para se lo su sus al como más
        pero muy está están son ser fue hay este esta esto yo tú él ella nosotros me mi ya
        también cuando sin sobre todo porque entre hasta donde qué cómo le les unos tiene
        tengo tienes puede hace han he has hemos nos así aquí ahora bien alguna algún algo
        nada cada otro otra mucho si sí creo vez ni hoy""",
    "it": """il lo la i gli le di del della dei delle che e è un una uno in per con non si
        sono da al alla nel nella ma come anche più questo questa ci mi ti ha hanno era
        essere molto perché quando se tutto sul sulla io tu lui lei noi voi loro l dell all
        nell degli ho sia hai abbiamo siamo sei c sto può quello quella così qui bene ancora
        sempre mai niente ogni altro già tra dopo prima oggi""",
    "pt": """o a os as de do da dos das que e é em no na nos nas um uma para com não por se ao
        à mais mas como foi são está ser eu você ele ela nós muito também quando isso este
        esta isto pelo pela seu sua já tem há onde porque sem aos pelos vocês têm fazer foram
        fomos bem aqui agora ainda então cada outro outra algum alguma me te lhe acho estão
        estou tenho hoje""",
    "nl": """de het een en van is dat die in te op niet met voor zijn er maar om aan ook als
        bij dan nog wat naar ze hij zij we wij ik je jij u was werd wordt heeft hebben kan
        geen dit deze of uit door over zo al wel heel veel mijn onze hun omdat want tot hoe
        waar ben bent heb hebt me mij jou jullie zich nu hier daar vandaag erg ons""",
}.items()}
# Letters that point to one language (or two): a small bonus on top of function words.
_LETTERS: dict[str, str] = {"fr": "èêàùâîôûëïçœ", "de": "äöüß", "es": "ñáíóú¿¡",
                            "it": "àèìòù", "pt": "ãõçáâêô", "nl": "ĳë"}
_LETTER_BONUS = 0.25
_MIN_FUNCTION_SHARE = 0.15


def _dominant_script(text: str) -> tuple[str, dict[str, int]] | None:
    """The script with the most (weighted) letters, "cjk" for Han and kana together, and the
    letter count of every script; None when there are no letters."""
    counts = {script: len(pattern.findall(text)) for script, pattern in _SCRIPTS.items()}
    weights = {script: counts[script]
               for script in ("latin", "cyrillic", "greek", "arabic", "devanagari")}
    weights["hangul"] = counts["hangul"] * _CJK_WEIGHT
    weights["cjk"] = (counts["kana"] + counts["han"]) * _CJK_WEIGHT
    script = max(weights, key=weights.__getitem__)
    return (script, counts) if weights[script] else None


def _foreign(script: str, text: str) -> bool:
    """Whether many of `text`'s letters in `script` are outside its language's alphabet."""
    alphabet = _ALPHABETS.get(script)
    if alphabet is None:
        return False
    letters = [letter.lower() for letter in _SCRIPTS[script].findall(text)]
    outside = sum(letter not in alphabet for letter in letters)
    return outside > _FOREIGN_SHARE * len(letters)


def _latin_language(text: str) -> str | None:
    tokens = re.findall(r"[^\W\d_]+", text.lower())
    scores = {code: sum(token in known for token in tokens)
              for code, known in _FUNCTION_WORDS.items()}
    best_hits = max(scores.values())
    if not tokens or best_hits < max(1, _MIN_FUNCTION_SHARE * len(tokens)):
        return None
    lowered = text.lower()
    for code, peculiar in _LETTERS.items():
        scores[code] += _LETTER_BONUS * sum(lowered.count(letter) for letter in peculiar)
    ranked = sorted(scores, key=scores.__getitem__, reverse=True)
    if scores[ranked[0]] == scores[ranked[1]]:
        return None
    return ranked[0]


def detect_language(text: str) -> str | None:
    """The ISO 639-1 code of `text`'s language among `LANGUAGES`, or None when unsure."""
    found = _dominant_script(text)
    if found is None:
        return None
    script, counts = found
    if _foreign(script, text):
        return None
    if script == "latin":
        return _latin_language(text)
    if script == "cjk":
        kana, han = counts["kana"], counts["han"]
        return "ja" if kana >= 0.1 * (kana + han) else "zh"
    return _SCRIPT_LANGUAGE[script]


class ResponseLanguage(BaseConstraint):
    type: Literal["response_language"] = "response_language"
    language: LanguageCode

    def problem(self, text: str) -> str:
        found = detect_language(text)
        if found == self.language:
            return ""
        wanted = LANGUAGES[self.language]
        if found is None:
            return (f"The language of the response could not be recognised as {wanted} - "
                    f"write the whole response in {wanted}, in full sentences.")
        return (f"The response is in {LANGUAGES[found]}, not {wanted} - rewrite all of it in "
                f"{wanted}.")

    def describe(self) -> str:
        return f"Write your entire response in {LANGUAGES[self.language]}, and no other language."
