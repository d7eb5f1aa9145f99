"""Tools for examples/travel_assistant.yaml, across several domains.

The data is a small fixed demo table (no network), so runs are reproducible.
"""

from typing import Literal

from chorus.tools import tool

_WEATHER = {"paris": (14, "light rain"), "oslo": (-2, "snow"), "rome": (19, "sunny"),
            "tokyo": (11, "cloudy"), "new york": (6, "windy")}
_RATES_TO_EUR = {"EUR": 1.0, "USD": 0.92, "GBP": 1.17, "JPY": 0.0062, "CHF": 1.05}
_DISTANCES_KM = {frozenset({"paris", "rome"}): 1106, frozenset({"paris", "oslo"}): 1343,
                 frozenset({"rome", "oslo"}): 2010, frozenset({"tokyo", "new york"}): 10838}
_PHRASES = {("hello", "french"): "bonjour", ("thank you", "french"): "merci",
            ("hello", "italian"): "ciao", ("thank you", "italian"): "grazie",
            ("hello", "japanese"): "konnichiwa", ("thank you", "japanese"): "arigatou"}


@tool
def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
    """Current weather in a city.

    Args:
        city: City name, e.g. Paris.
        unit: Temperature unit.
    """
    if city.lower() not in _WEATHER:
        raise ValueError(f"no weather data for {city}; known: {', '.join(_WEATHER)}")
    degrees, sky = _WEATHER[city.lower()]
    if unit == "fahrenheit":
        degrees = round(degrees * 9 / 5 + 32)
    return f"{city}: {degrees} degrees {unit}, {sky}"


@tool
def convert_currency(amount: float, source: str, target: str) -> str:
    """Convert an amount of money between currencies.

    Args:
        amount: The amount to convert.
        source: Three-letter currency code to convert from, e.g. USD.
        target: Three-letter currency code to convert to, e.g. EUR.
    """
    source, target = source.upper(), target.upper()
    for code in (source, target):
        if code not in _RATES_TO_EUR:
            raise ValueError(f"unknown currency {code}; known: {', '.join(_RATES_TO_EUR)}")
    value = amount * _RATES_TO_EUR[source] / _RATES_TO_EUR[target]
    return f"{amount:g} {source} = {value:.2f} {target}"


@tool
def distance_between(origin: str, destination: str) -> str:
    """Distance by air between two cities, in kilometres.

    Args:
        origin: First city.
        destination: Second city.
    """
    key = frozenset({origin.lower(), destination.lower()})
    if key not in _DISTANCES_KM:
        raise ValueError(f"no distance known between {origin} and {destination}")
    return f"{origin} to {destination}: {_DISTANCES_KM[key]} km"


@tool
def translate_phrase(phrase: Literal["hello", "thank you"],
                     language: Literal["french", "italian", "japanese"]) -> str:
    """Translate a common travel phrase.

    Args:
        phrase: The English phrase.
        language: The language to translate into.
    """
    return _PHRASES[(phrase, language)]


@tool(needs_confirmation=True)
def book_hotel(city: str, nights: int) -> str:
    """Book a hotel room (demo: nothing is really booked).

    Args:
        city: Where to stay.
        nights: Number of nights, 1 to 30.
    """
    if not 1 <= nights <= 30:
        raise ValueError("nights must be between 1 and 30")
    return f"Booked {nights} night(s) in {city} (demo booking, reference DEMO-{nights:03d})"
