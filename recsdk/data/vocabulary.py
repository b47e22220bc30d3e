"""Words of the synthetic shop: a department > category > leaf taxonomy with leaf terms.

Each leaf has a product noun and a few terms that only its items use, so item text
carries its category (TF-IDF on titles and descriptions can recover the leaf). Trees
larger than this built-in one get made-up pseudo-words for the extra nodes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

#: department -> category -> leaf -> (product noun, leaf terms)
TAXONOMY: dict[str, dict[str, dict[str, tuple[str, tuple[str, ...]]]]] = {
    "Electronics": {
        "Phones": {
            "Smartphones": ("smartphone", ("5g", "oled", "dual-sim", "megapixel", "fast-charging")),
            "Phone Cases": ("phone case", ("silicone", "shockproof", "magsafe", "wallet",
                                           "bumper")),
            "Chargers": ("charger", ("usb-c", "wattage", "wireless", "gan", "qi")),
        },
        "Computers": {
            "Laptops": ("laptop", ("ultrabook", "ssd", "ram", "touchpad", "processor")),
            "Monitors": ("monitor", ("4k", "refresh-rate", "ips", "hdr", "bezel")),
            "Keyboards": ("keyboard", ("mechanical", "switches", "rgb", "keycaps", "tenkeyless")),
        },
        "Audio": {
            "Headphones": ("headphones", ("noise-cancelling", "over-ear", "drivers", "earcups",
                                          "headband")),
            "Speakers": ("speaker", ("subwoofer", "stereo", "bass", "soundstage", "woofer")),
            "Earbuds": ("earbuds", ("true-wireless", "eartips", "charging-case", "ipx4", "in-ear")),
        },
        "Cameras": {
            "Digital Cameras": ("camera", ("mirrorless", "sensor", "autofocus", "viewfinder",
                                           "shutter")),
            "Lenses": ("lens", ("focal", "zoom", "prime", "stabilisation", "bokeh")),
            "Tripods": ("tripod", ("carbon", "ballhead", "monopod", "payload", "legs")),
        },
    },
    "Fashion": {
        "Womens Clothing": {
            "Dresses": ("dress", ("midi", "floral", "wrap", "sleeveless", "hemline")),
            "Blouses": ("blouse", ("chiffon", "button-down", "ruffle", "silk", "puff-sleeve")),
            "Skirts": ("skirt", ("pleated", "a-line", "waistband", "mini", "maxi")),
        },
        "Mens Clothing": {
            "Shirts": ("shirt", ("oxford", "slim-fit", "cuffs", "poplin", "collar")),
            "Trousers": ("trousers", ("chinos", "tapered", "belt-loops", "twill", "inseam")),
            "Jackets": ("jacket", ("bomber", "lining", "windproof", "hood", "parka")),
        },
        "Shoes": {
            "Sneakers": ("sneakers", ("cushioning", "outsole", "laces", "mesh", "trainers")),
            "Boots": ("boots", ("ankle", "chelsea", "leather-upper", "lug-sole", "shearling")),
            "Sandals": ("sandals", ("straps", "cork", "footbed", "slide", "flip-flop")),
        },
        "Accessories": {
            "Bags": ("bag", ("tote", "crossbody", "shoulder-strap", "compartments", "clutch")),
            "Watches": ("watch", ("chronograph", "dial", "quartz", "sapphire", "bezel-ring")),
            "Jewellery": ("necklace", ("pendant", "sterling", "gold-plated", "earrings",
                                       "bracelet")),
        },
    },
    "Home and Garden": {
        "Kitchen": {
            "Cookware": ("frying pan", ("non-stick", "induction", "skillet", "saucepan",
                                        "cast-iron")),
            "Knives": ("knife", ("blade", "santoku", "whetstone", "forged", "paring")),
            "Coffee Makers": ("coffee maker", ("espresso", "grinder", "brew", "carafe",
                                               "barista")),
        },
        "Furniture": {
            "Sofas": ("sofa", ("upholstery", "cushions", "sectional", "recliner", "velvet")),
            "Tables": ("table", ("oak", "extendable", "dining", "tabletop", "walnut")),
            "Chairs": ("chair", ("ergonomic", "armrest", "swivel", "lumbar", "castors")),
        },
        "Garden": {
            "Lawn Mowers": ("lawn mower", ("cordless", "cutting-width", "mulching", "grass-box",
                                           "lawn")),
            "Plants": ("plant", ("potted", "perennial", "succulent", "foliage", "houseplant")),
            "Garden Tools": ("tool set", ("pruning", "shears", "trowel", "rake", "secateurs")),
        },
        "Bedding": {
            "Duvets": ("duvet", ("tog", "down", "hypoallergenic", "microfibre", "quilted")),
            "Pillows": ("pillow", ("memory-foam", "orthopaedic", "pillowcase", "firm", "cooling")),
            "Bed Linen": ("sheet set", ("thread-count", "percale", "fitted", "sateen", "bedding")),
        },
    },
    "Sports and Outdoors": {
        "Fitness": {
            "Dumbbells": ("dumbbells", ("adjustable", "kettlebell", "weights", "neoprene",
                                        "barbell")),
            "Yoga": ("yoga mat", ("non-slip", "pilates", "stretching", "asana", "meditation")),
            "Treadmills": ("treadmill", ("incline", "folding", "cardio", "console",
                                          "running-belt")),
        },
        "Cycling": {
            "Bikes": ("bike", ("gears", "frame", "disc-brakes", "suspension", "saddle")),
            "Helmets": ("helmet", ("ventilation", "visor", "mips", "certified", "chinstrap")),
            "Bike Lights": ("bike light", ("lumens", "rechargeable", "rear-light", "beam",
                                           "handlebar")),
        },
        "Camping": {
            "Tents": ("tent", ("two-person", "flysheet", "poles", "pegs", "vestibule")),
            "Sleeping Bags": ("sleeping bag", ("mummy", "comfort-rating", "insulation",
                                               "compressible", "baffle")),
            "Stoves": ("camping stove", ("gas", "burner", "canister", "simmer", "windshield")),
        },
        "Team Sports": {
            "Football": ("football", ("match-ball", "stitched", "pitch", "goalkeeper", "cleats")),
            "Basketball": ("basketball", ("hoop", "dribble", "backboard", "court", "rebound")),
            "Tennis": ("tennis racket", ("strings", "grip-size", "spin", "baseline", "racquet")),
        },
    },
    "Books and Media": {
        "Fiction": {
            "Crime": ("crime novel", ("detective", "murder", "thriller", "suspense",
                                      "investigation")),
            "Fantasy": ("fantasy novel", ("dragons", "magic", "kingdom", "quest", "sorcerer")),
            "Romance": ("romance novel", ("love", "heartwarming", "passion", "wedding",
                                          "second-chance")),
        },
        "Non-fiction": {
            "Biography": ("biography", ("memoir", "autobiography", "career", "portrait",
                                        "life-story")),
            "History": ("history book", ("empire", "war", "ancient", "medieval", "revolution")),
            "Science": ("science book", ("physics", "universe", "evolution", "quantum",
                                         "discovery")),
        },
        "Childrens Books": {
            "Picture Books": ("picture book", ("illustrated", "bedtime", "toddler", "rhymes",
                                               "animals")),
            "Activity Books": ("activity book", ("stickers", "puzzles", "colouring", "mazes",
                                                 "learning")),
            "Young Adult": ("ya novel", ("teen", "coming-of-age", "dystopian", "friendship",
                                         "school")),
        },
        "Music": {
            "Vinyl": ("vinyl record", ("lp", "pressing", "gatefold", "180g", "remastered")),
            "CDs": ("cd album", ("tracklist", "deluxe", "compilation", "live", "bonus-tracks")),
            "Instruments": ("guitar", ("acoustic", "fretboard", "tuner", "amplifier", "chords")),
        },
    },
}

ADJECTIVES = ("Classic", "Premium", "Essential", "Compact", "Deluxe", "Everyday", "Pro",
              "Lightweight", "Modern", "Eco", "Signature", "Ultra")
COLOURS = ("black", "white", "grey", "navy", "red", "green", "blue", "beige", "pink", "brown")
SELLING_POINTS = (
    "Free delivery on orders over 50.",
    "Backed by a two-year warranty.",
    "Customers love the quality.",
    "Designed to last.",
    "A favourite gift idea.",
    "Easy returns within 30 days.",
)
#: (city, region, share of users)
CITIES = (
    ("London", "England", 0.22), ("Manchester", "England", 0.09), ("Birmingham", "England", 0.08),
    ("Leeds", "England", 0.06), ("Bristol", "England", 0.05), ("Glasgow", "Scotland", 0.07),
    ("Edinburgh", "Scotland", 0.06), ("Cardiff", "Wales", 0.05), ("Swansea", "Wales", 0.03),
    ("Belfast", "Northern Ireland", 0.05), ("Liverpool", "England", 0.07),
    ("Newcastle", "England", 0.05), ("Brighton", "England", 0.04), ("Aberdeen", "Scotland", 0.03),
    ("Derry", "Northern Ireland", 0.05),
)

_CONSONANTS = list("bdfgklmnprstvz")
_VOWELS = list("aeiou")


@dataclass(frozen=True)
class Node:
    """A category of the synthetic tree; leaves carry a noun and their own terms."""

    id: str
    name: str
    parent_id: str | None
    noun: str = ""
    terms: tuple[str, ...] = ()


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def pseudo_words(rng: np.random.Generator, n: int, taken: set[str] | None = None) -> list[str]:
    """``n`` distinct pronounceable made-up words (brands, names of extra categories)."""
    taken = set() if taken is None else taken
    out: list[str] = []
    while len(out) < n:
        syllables = int(rng.integers(2, 4))
        word = "".join(str(rng.choice(_CONSONANTS)) + str(rng.choice(_VOWELS))
                       for _ in range(syllables))
        if word not in taken:
            taken.add(word)
            out.append(word)
    return out


def build_tree(shape: tuple[int, int, int], rng: np.random.Generator
               ) -> tuple[list[Node], list[Node], list[Node]]:
    """Departments, categories and leaves of a ``(departments, per department, per
    category)`` tree; names come from :data:`TAXONOMY` where it has enough of them."""
    n_dept, n_cat, n_leaf = shape
    if min(shape) < 1:
        raise ValueError(f"tree shape must be three positive numbers, got {shape}")
    taken: set[str] = set()
    depts: list[Node] = []
    cats: list[Node] = []
    leaves: list[Node] = []
    known_depts = list(TAXONOMY.items())

    def names(known: list[str], n: int) -> list[str]:
        extra = [w.capitalize() for w in pseudo_words(rng, max(0, n - len(known)), taken)]
        return (known + extra)[:n]

    for d, d_name in enumerate(names([k for k, _ in known_depts], n_dept)):
        d_id = slug(d_name)
        depts.append(Node(d_id, d_name, None))
        known_cats = list(known_depts[d][1].items()) if d < len(known_depts) else []
        for c, c_name in enumerate(names([k for k, _ in known_cats], n_cat)):
            c_id = f"{d_id}/{slug(c_name)}"
            cats.append(Node(c_id, c_name, d_id))
            known_leaves = list(known_cats[c][1].items()) if c < len(known_cats) else []
            for l_name in names([k for k, _ in known_leaves], n_leaf):
                if l_name in dict(known_leaves):
                    noun, terms = dict(known_leaves)[l_name]
                else:
                    noun, terms = l_name.lower(), tuple(pseudo_words(rng, 5, taken))
                leaves.append(Node(f"{c_id}/{slug(l_name)}", l_name, c_id, noun, terms))
    return depts, cats, leaves
