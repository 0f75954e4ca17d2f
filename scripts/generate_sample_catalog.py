#!/usr/bin/env python3
"""Generate a realistic, deterministic Woolworths-style South African grocery catalog.json.

The output has the shape the catalog importer accepts (a scraper's catalog.json): either
``{"source": ..., "scraped_at": ..., "items": [...]}`` (``--format object``, the default) or a bare JSON
array of items (``--format list``). Every item has ``product_id`` (unique), ``title`` and ``price``
(rand, usually a JSON number, sometimes a plain decimal string such as ``"34.99"``) plus the usual scraper
fields (``url``, ``image_url``, ``category``; ``catalog_ref_id`` where the site keeps a reference apart
from the product id; ``available`` only on items marked out of stock) and extra fields that the importer
keeps as attributes (``brand``, ``unit_price``, ``promo``, ``nutrition``, ``allergens``, ``barcode``, ...).
The retailer is named once, in the header (the importer's default retailer is the same), and an item's
size is the end of its title (``size`` only appears for items sold ``each``). A few optional fields are
missing on some items, as they are in real scraper output.

The same ``--seed`` and ``--count`` always give the same bytes. Items are written one at a time, so
``--count 100000`` (about 31 MB, some 310 bytes an item) takes a few seconds and little memory. Only the
standard library is used.

Examples::

    python scripts/generate_sample_catalog.py                       # 3000 items -> data/sample-catalog.json
    python scripts/generate_sample_catalog.py --count 100000 --out /tmp/big.json
    python scripts/generate_sample_catalog.py --count 50 --format list --out -   # to stdout
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import functools
import json
import math
import os
import random
import re
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import IO, Any, NamedTuple

DEFAULT_COUNT = 3000
DEFAULT_SEED = 42
DEFAULT_OUT = os.path.join("data", "sample-catalog.json")
MAX_COUNT = 5_000_000  # product ids stay unique far beyond this (10^7 short ids, 10^9 EAN ids)

RETAILER = "woolworths"
SITE = "https://www.woolworths.co.za"
IMAGE_HOST = "https://assets.woolworthsstatic.co.za"

UNAVAILABLE_RATE = 0.08
STRING_PRICE_RATE = 0.07
CATALOG_REF_RATE = 0.12  # share of items with a catalog_ref_id of their own
UNIT_PRICE_RATE = 0.45
NUTRITION_RATE = 0.03
EAN_ID_RATE = 0.55  # share of items whose product_id is a 13-digit EAN ("600..."); the rest are "2xxxxxxx"


# --------------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------------


class Family(NamedTuple):
    """Products of one kind: every brand x variant x name x size makes a title (``fmt`` orders the words).

    A name may carry a mini-syntax (see ``_name_spec``): ``"Brand|Name"`` for a product only that brand
    makes, ``"Name@ml"`` / ``"Name@385 g;775 g"`` to narrow or set its sizes, ``"Name~24.99"`` for its own
    reference price.
    """

    category: str
    aisle: str
    brands: tuple[str, ...]
    names: tuple[str, ...]
    sizes: tuple[str, ...]
    ref_price: float  # rand, for a name's first size; other sizes scale from it
    variants: tuple[str, ...]
    fmt: str
    allergens: tuple[str, ...]
    nutrition: str | None  # key into NUTRITION_PROFILES, None for non-food
    origin: bool  # fresh produce / meat: sometimes carries country_of_origin


def F(
    category: str,
    aisle: str,
    brands: Sequence[str],
    names: Sequence[str],
    sizes: Sequence[str],
    ref_price: float,
    variants: Sequence[str] = ("",),
    fmt: str = "{b} {v} {n}",
    allergens: Sequence[str] = (),
    nutrition: str | None = None,
    origin: bool = False,
) -> Family:
    return Family(
        category,
        aisle,
        tuple(brands),
        tuple(names),
        tuple(sizes),
        ref_price,
        tuple(variants),
        fmt,
        tuple(allergens),
        nutrition,
        origin,
    )


# Vocabulary tables are laid out by hand.
# fmt: off
W = "Woolworths"
FV, MEAT, DAIRY = "Fruit & Veg", "Meat Poultry & Fish", "Dairy Eggs & Milk"
BAKERY, PANTRY = "Bakery", "Pantry"
FROZEN, BEV, SNACKS, HOUSE, BABY = "Frozen", "Beverages", "Snacks & Sweets", "Household", "Baby"
HB, PETS, DELI = "Health & Beauty", "Pets", "Deli & Ready Meals"

FAMILIES: tuple[Family, ...] = (
    # ---- Fruit & Veg -------------------------------------------------------------------------------
    F(FV, "Fruit", ("", W), (
        "Bananas", "Granny Smith Apples", "Pink Lady Apples", "Royal Gala Apples", "Golden Delicious Apples",
        "Starking Apples", "Navel Oranges", "Valencia Oranges", "Easy Peeler Naartjies", "Lemons", "Limes",
        "Packham Pears", "Forelle Pears", "Nectarines", "Yellow Cling Peaches", "Plums", "Apricots",
        "Ruby Grapefruit",
    ), ("1 kg", "1.5 kg", "2 kg", "750 g"), 27.99, ("", "Organic"), nutrition="fruit", origin=True),
    F(FV, "Fruit", ("", W), (
        "Hass Avocados", "Mangoes", "Kiwifruit", "Litchis", "Papinos", "Guavas", "Granadillas", "Figs",
        "Sweet Melons", "Pomegranates", "Persimmons",
    ), ("4 pk", "6 pk", "500 g", "1 kg"), 39.99,
        ("", "Ripe & Ready", "Organic"), nutrition="fruit", origin=True),
    F(FV, "Fruit", ("", W), (
        "Strawberries", "Blueberries", "Raspberries", "Blackberries", "Cape Gooseberries", "Cherries",
        "Seedless Red Grapes", "Seedless White Grapes", "Crimson Seedless Grapes",
    ), ("125 g", "250 g", "400 g", "500 g"), 34.99, ("", "Organic", "Jumbo"), nutrition="fruit", origin=True),
    F(FV, "Fruit", ("",), (
        "Pineapple", "Watermelon", "Spanspek", "Papaya", "Queen Pineapple", "Coconut",
    ), ("each",), 24.99, nutrition="fruit", origin=True),
    F(FV, "Vegetables", ("", W), (
        "Potatoes", "Baby Potatoes", "Sweet Potatoes", "Onions", "Red Onions", "Carrots", "Baby Carrots",
        "Butternut", "Beetroot", "Gem Squash", "Pumpkin", "Baby Marrows", "Patty Pans", "Tomatoes",
        "Cherry Tomatoes", "Rosa Tomatoes", "Green Beans", "Sugar Snap Peas", "Brussels Sprouts", "Parsnips",
    ), ("500 g", "1 kg", "2 kg", "300 g"), 21.99, ("", "Organic", "Prepacked"), nutrition="veg", origin=True),
    F(FV, "Vegetables", ("", W), (
        "Broccoli", "Tenderstem Broccoli", "Cauliflower", "Cabbage", "Red Cabbage", "Cucumber",
        "English Cucumber", "Iceberg Lettuce", "Butter Lettuce", "Cos Lettuce", "Celery", "Leeks",
        "Red Pepper", "Yellow Pepper", "Green Pepper", "Sweetcorn", "Aubergine", "Fennel", "Asparagus",
        "Kale",
    ), ("each", "2 pk", "300 g", "500 g"), 19.99, ("", "Organic"), nutrition="veg", origin=True),
    F(FV, "Salads & Herbs", (W,), (
        "Baby Spinach", "Wild Rocket", "Mixed Salad Leaves", "Spinach", "Coriander", "Basil", "Mint",
        "Flat-Leaf Parsley", "Rosemary", "Thyme", "Spring Onions", "Garlic", "Ginger", "Jalapeño Chillies",
        "Red Chillies", "Button Mushrooms", "Portabellini Mushrooms", "Exotic Mushrooms",
        "Shiitake Mushrooms",
        "Coleslaw Mix", "Stir-Fry Vegetables", "Butternut Cubes", "Vegetable Soup Mix", "Sprouts Mix",
    ), ("100 g", "150 g", "250 g", "400 g"), 22.99, ("", "Organic", "Washed & Ready"), nutrition="veg"),
    # ---- Meat Poultry & Fish -----------------------------------------------------------------------
    F(MEAT, "Sausages", (W, "Eskort", "Enterprise", "Karan Beef", "Bokomo Farm"), ("Boerewors",), (
        "500 g", "1 kg", "800 g", "2 kg"), 64.99, (
        "Traditional", "Spicy", "Garlic", "Cheese", "Lamb", "Beef", "Chakalaka", "Boland", "Farm-Style",
    ), allergens=("sulphites",), nutrition="meat", origin=True),
    F(MEAT, "Sausages", (W, "Eskort", "Enterprise"), (
        "Pork Sausages", "Beef Sausages", "Chipolatas", "Bratwurst", "Russians", "Cheese Grillers",
    ), ("500 g", "1 kg", "400 g"), 59.99, ("", "Thick", "Smoked", "Pepper", "Herb"),
        allergens=("sulphites", "soya"), nutrition="meat"),
    F(MEAT, "Biltong & Dried Meat", (W, "Safari", "Crown National", "Stockman's", "Karoo Biltong Co."), (
        "Sliced Beef Biltong", "Beef Chilli Bites", "Beef Droëwors", "Beef Biltong Sticks", "Kudu Biltong",
        "Ostrich Biltong", "Beef Biltong Chips", "Game Droëwors", "Chilli Sticks",
    ), ("80 g", "100 g", "200 g", "1 kg"), 54.99, ("", "Original", "Peri-Peri", "Chutney", "Black Pepper"),
        nutrition="meat"),
    F(MEAT, "Chicken", (W, "Rainbow", "County Fair", "Farmer Brown", "Goldi"), (
        "Chicken Breast Fillets", "Chicken Thighs", "Chicken Drumsticks", "Whole Chicken", "Chicken Wings",
        "Chicken Sosaties", "Chicken Mince", "Chicken Braai Pack", "Chicken Strips", "Chicken Flatty",
    ), ("500 g", "1 kg", "1.5 kg", "2 kg", "800 g"), 74.99, (
        "", "Free Range", "Skinless", "Marinated Peri-Peri", "Lemon & Herb", "Tikka",
    ), nutrition="meat", origin=True),
    F(MEAT, "Beef", (W,), (
        "Beef Mince", "Rump Steak", "Sirloin Steak", "Beef Fillet", "Beef Stewing Meat", "T-Bone Steak",
        "Beef Short Rib", "Beef Brisket", "Rib-Eye Steak", "Beef Burger Patties", "Beef Goulash",
        "Topside Roast", "Oxtail", "Beef Shin", "Beef Strips",
    ), ("300 g", "500 g", "1 kg", "750 g"), 89.99, (
        "", "Grass-Fed", "Free Range", "Matured", "Lean", "Extra Lean", "Dry-Aged",
    ), nutrition="meat", origin=True),
    F(MEAT, "Lamb & Pork", (W,), (
        "Lamb Loin Chops", "Leg of Lamb", "Lamb Shanks", "Lamb Rib Chops", "Lamb Mince", "Lamb Curry Pieces",
        "Lamb Neck", "Lamb Sosaties", "Pork Belly", "Pork Loin Chops", "Pork Spare Ribs", "Pork Neck Steaks",
        "Pork Fillet", "Gammon",
    ), ("500 g", "1 kg", "1.5 kg", "800 g"), 119.99,
        ("", "Karoo", "Free Range", "Sticky Marinated", "Smoked"),
        nutrition="meat", origin=True),
    F(MEAT, "Bacon & Ham", (W, "Eskort", "Enterprise", "Bull Brand"), (
        "Streaky Bacon", "Back Bacon", "Shoulder Bacon", "Bacon Bits", "Sliced Ham", "Gypsy Ham",
        "Pancetta", "Corned Beef",
    ), ("200 g", "250 g", "500 g", "1 kg", "125 g"), 49.99,
        ("", "Smoked", "Rindless", "Maple", "Honey-Glazed"),
        allergens=("sulphites",), nutrition="meat"),
    F(MEAT, "Fish & Seafood", (W, "Sea Harvest", "I&J", "Oceana Select"), (
        "Hake Fillets", "Kingklip Fillets", "Salmon Fillets", "Yellowtail Steaks", "Prawns", "Calamari Rings",
        "Smoked Salmon Trout", "Snoek", "Tuna Steaks", "Mussels", "Kabeljou Fillets", "Fish Cakes",
        "Cape Bream", "Fish Sosaties",
    ), ("300 g", "400 g", "500 g", "800 g", "1 kg"), 94.99, (
        "", "Skin-On", "Sustainably Caught", "Lemon & Herb", "Wood-Smoked", "MSC-Certified",
    ), allergens=("fish", "crustaceans"), nutrition="fish"),
    # ---- Dairy Eggs & Milk -------------------------------------------------------------------------
    F(DAIRY, "Milk", (W, "Clover", "Parmalat", "Fair Cape", "Douglasdale", "Darling Dairy"), (
        "Fresh Milk", "Long Life Milk",
    ), ("1 l", "2 l", "3 l", "500 ml", "6 x 1 l"), 21.99, (
        "Full Cream", "Low Fat", "Fat Free", "Lactose-Free", "A2 Protein", "Organic Full Cream",
    ), allergens=("milk",), nutrition="milk"),
    F(DAIRY, "Milk", (W, "Alpro", "Oatly", "Good Hope"), (
        "Oat Milk", "Almond Milk", "Soya Milk", "Coconut Milk Drink", "Cashew Milk",
    ), ("1 l", "250 ml", "6 x 1 l"), 39.99, ("", "Unsweetened", "Barista", "Vanilla", "Chocolate"),
        allergens=("soya", "tree nuts"), nutrition="milk"),
    F(DAIRY, "Eggs", (W, "Nulaid", "Eggbert", "Eggcellent", "Happy Hens"), (
        "Large Eggs", "Extra Large Eggs", "Jumbo Eggs", "Mixed Size Eggs",
    ), ("6 pk", "12 pk", "18 pk", "30 pk", "36 pk", "60 pk"), 36.99, (
        "Free Range", "Pasture Reared", "Organic", "Omega-3", "",
    ), allergens=("egg",), nutrition="egg"),
    F(DAIRY, "Yoghurt", (W, "Danone", "Clover", "Fair Cape", "Lancewood", "Yoco", "Nutriday", "Fairview"), (
        "Double Cream Yoghurt@g", "Greek Yoghurt@g", "Drinking Yoghurt@ml", "Fat Free Yoghurt@g",
        "Bulgarian Yoghurt@g", "Low Fat Yoghurt@g", "Kefir@ml", "Skyr@g",
    ), ("175 g", "500 g", "1 kg", "6 x 100 g", "250 ml", "1 l", "6 x 100 ml"), 24.99, (
        "Plain", "Strawberry", "Vanilla", "Granadilla", "Mixed Berry", "Honey", "Mango", "Peach & Apricot",
        "Litchi", "Lemon Curd", "Rooibos & Honey",
    ), allergens=("milk",), nutrition="yoghurt"),
    F(DAIRY, "Cheese", (W, "Clover", "Lancewood", "Simonsberg", "Fairview", "Dalewood", "Président",
                        "Galbani"), (
        "Cheddar", "Gouda", "Mozzarella", "Feta", "Parmesan", "Brie", "Camembert", "Emmental", "Gruyère",
        "Halloumi", "Cream Cheese", "Cottage Cheese", "Edam", "Havarti", "Blue Cheese", "Ricotta",
        "Mascarpone", "Pecorino", "Boerenkaas",
    ), ("200 g", "400 g", "900 g", "125 g", "250 g"), 59.99, (
        "", "Mature", "Sliced", "Grated", "Reduced Fat", "Aged", "Smoked", "Peppadew®", "Herb & Garlic",
    ), allergens=("milk",), nutrition="cheese"),
    F(DAIRY, "Butter & Spreads", (W, "Lurpak", "Clover", "Président", "Kerrygold"), ("Butter",),
      ("250 g", "500 g", "1 kg", "125 g"), 59.99, ("Salted", "Unsalted", "Spreadable", "Slightly Salted",
                                                   "Organic", "Garlic & Herb"),
      allergens=("milk",), nutrition="fat"),
    F(DAIRY, "Butter & Spreads", ("Flora", "Rama", "Stork", W, "Clover Mama's"), (
        "Margarine", "Spread", "Baking Block", "Medium Fat Spread",
    ), ("500 g", "1 kg", "250 g", "2 kg"), 39.99,
        ("", "Original", "Lighter", "Olive", "Buttery", "Plant-Based"),
        allergens=("milk",), nutrition="fat"),
    F(DAIRY, "Cream & Desserts", (W, "Clover", "Nestlé", "Lancewood", "Darling Dairy"), (
        "Fresh Cream@ml", "Sour Cream@ml", "Crème Fraîche@ml", "Whipping Cream@ml", "Pouring Custard@ml",
        "Chocolate Mousse@g", "Crème Caramel@g", "Panna Cotta@g", "Rice Pudding@g",
    ), ("250 ml", "500 ml", "125 ml", "1 l", "4 x 100 g", "2 x 100 g", "500 g"), 27.99, (
        "", "Double Thick", "Vanilla", "Lite",
    ),
        allergens=("milk",), nutrition="cream"),
    F(DAIRY, "Maas & Buttermilk", ("Clover", "Inkomazi", W, "Parmalat", "Sundale"), (
        "Amasi", "Buttermilk", "Maas",
    ), ("500 ml", "1 l", "2 l", "1.75 l"), 22.99, ("", "Plain", "Low Fat"), allergens=("milk",),
        nutrition="milk"),
    # ---- Bakery ------------------------------------------------------------------------------------
    F(BAKERY, "Bread", (W, "Albany", "Sasko", "Blue Ribbon", "Sunbake", "Duens", "Bakers Inn"), (
        "Sliced Bread", "Toaster Bread", "Sandwich Loaf", "Farm Loaf", "Pan Loaf", "Thick Slice Bread",
    ), ("600 g", "700 g", "800 g"), 19.99, (
        "White", "Brown", "Whole Wheat", "Seed", "Low GI", "Rye", "Multigrain", "High Fibre", "Sourdough",
        "Sunflower & Flax", "Gluten-Free",
    ), allergens=("gluten", "wheat", "soya"), nutrition="bread"),
    F(BAKERY, "In-Store Bakery", (W,), (
        "Croissants", "Hot Cross Buns", "Bagels", "Ciabatta Rolls", "Sourdough Rolls", "Hamburger Rolls",
        "Hot Dog Rolls", "Pita Breads", "Wraps", "Muffins", "English Muffins", "Scones", "Pain au Chocolat",
        "Brioche Buns", "Crumpets", "Flapjacks", "Vetkoek", "Roosterkoek",
    ), ("4 pk", "6 pk", "8 pk", "2 pk", "12 pk"), 34.99, (
        "", "Butter", "Wholewheat", "Seeded", "Cinnamon", "Chocolate Chip", "Blueberry", "Mini", "Cheese",
        "Rye", "Spelt",
    ), allergens=("gluten", "wheat", "milk", "egg"), nutrition="bread"),
    F(BAKERY, "Loaves", (W,), (
        "Sourdough Loaf", "Ciabatta", "Baguette", "Rye Loaf", "Banting Loaf", "Seed Loaf", "Focaccia",
        "Potbrood", "Challah", "Mosbolletjie Loaf", "Garlic Bread",
    ), ("each", "400 g", "800 g"), 39.99, ("", "Rustic", "Olive & Rosemary", "Stone-Baked", "Wholewheat"),
        allergens=("gluten", "wheat"), nutrition="bread"),
    F(BAKERY, "Rusks", ("Ouma", W, "Bakers", "Nola", "Huletts", "Karoo Rusk Co."), ("Rusks",), (
        "450 g", "500 g", "1 kg", "750 g"), 54.99, (
        "Buttermilk", "Muesli", "Condensed Milk", "Wholewheat", "Aniseed", "Buttermilk Low GI",
        "Chocolate Chip", "Cranberry & Almond", "Bran", "Health",
    ), allergens=("gluten", "wheat", "milk", "egg"), nutrition="biscuit"),
    F(BAKERY, "Cakes & Desserts", (W,), (
        "Chocolate Cake", "Carrot Cake", "Red Velvet Cake", "Lemon Meringue Pie", "Milk Tart",
        "Malva Pudding",
        "Baked Cheesecake", "Crème Brûlée", "Koeksisters", "Brownies", "Lamingtons", "Apple Crumble",
        "Cupcakes", "Éclairs", "Danish Pastries", "Tiramisu", "Custard Slices", "Hertzoggies",
    ), ("each", "500 g", "1 kg", "6 pk", "4 pk"), 79.99,
        ("", "Mini", "Family", "Gluten-Free", "Salted Caramel"),
        allergens=("gluten", "wheat", "milk", "egg"), nutrition="cake"),
    # ---- Pantry ------------------------------------------------------------------------------------
    F(PANTRY, "Breakfast Cereals", ("Jungle", "Bokomo", W, "Pure Good", "Pride"), (
        "Oats", "Instant Oats", "Oat So Easy", "Porridge", "Oat Bran",
    ), ("500 g", "1 kg", "2 kg", "10 x 35 g"), 34.99, (
        "", "Original", "Apple & Cinnamon", "Honey", "Strawberry", "Steel-Cut", "Rolled", "Gluten-Free",
    ), allergens=("gluten", "oats"), nutrition="cereal"),
    F(PANTRY, "Breakfast Cereals", ("Kellogg's", "Bokomo", W, "Nature's Choice", "Cape Granola Co."), (
        "Corn Flakes", "Muesli", "Granola", "Bran Flakes", "Crunchy Muesli", "Honey Nut Clusters",
        "Toasted Muesli", "Puffed Rice",
    ), ("500 g", "750 g", "1 kg", "375 g", "450 g", "900 g"), 49.99, (
        "", "Original", "Berry", "Nutty", "Low Sugar", "Protein", "Banting", "Tropical Fruit",
    ), allergens=("gluten", "wheat", "tree nuts"), nutrition="cereal"),
    F(PANTRY, "Breakfast Cereals", ("",), (
        "Bokomo|Weet-Bix", "Bokomo|ProNutro", "Kellogg's|Rice Krispies", "Kellogg's|All-Bran Flakes",
        "Kellogg's|Special K", "Kellogg's|Coco Pops", "Kellogg's|Strawberry Pops", "Nestlé|Milo Cereal",
        "Nestlé|Cheerios", "Tiger Brands|Maltabella", "Bokomo|Morvite", "Futurelife|Smart Food",
    ), ("500 g", "750 g", "1 kg", "450 g", "900 g", "250 g"), 54.99, (
        "", "Original", "Chocolate", "Banana", "Wholewheat", "Berry", "Honey",
    ), fmt="{b} {n} {v}", allergens=("gluten", "wheat", "milk"), nutrition="cereal"),
    F(PANTRY, "Maize Meal & Grains", ("White Star", "Ace", "Iwisa", "Induna", "Impala", "Tafelberg", W), (
        "Maize Meal", "Samp", "Mealie Rice", "Samp & Beans", "Mabele",
    ), ("1 kg", "2.5 kg", "5 kg", "10 kg", "12.5 kg"), 19.99, (
        "Super", "Special", "Instant", "Braai Pap", "Sifted", "Fortified",
    ), nutrition="grain"),
    F(PANTRY, "Canned Food", ("Koo", "All Gold", "Rhodes", W, "Pakco", "Giant"), (
        "Baked Beans", "Butter Beans", "Chakalaka", "Mixed Beans", "Chickpeas", "Red Kidney Beans",
        "Sugar Beans", "Lentils", "Cream Style Sweetcorn", "Garden Peas", "Mixed Vegetables",
    ), ("410 g", "400 g", "6 x 410 g", "420 g"), 17.99, (
        "", "in Tomato Sauce", "in Chilli Sauce", "in Brine", "Hot", "Mild & Spicy", "Curried",
    ), fmt="{b} {n} {v}", nutrition="beans"),
    F(PANTRY, "Canned Food", ("Lucky Star", "John West", W, "Saldanha", "Glenryck", "Sea Harvest"), (
        "Pilchards", "Tuna Chunks", "Sardines", "Mackerel", "Salmon", "Tuna Shredded",
        "Bull Brand|Corned Meat",
        "Bull Brand|Corned Beef", "Eskort|Vienna Sausages",
    ), ("155 g", "170 g", "215 g", "400 g", "300 g", "3 x 170 g"), 24.99, (
        "in Tomato Sauce", "in Chilli Sauce", "in Brine", "in Oil", "in Curry Sauce", "with Peri-Peri", "",
    ), fmt="{b} {n} {v}", allergens=("fish",), nutrition="fish"),
    F(PANTRY, "Canned Food", (W, "Rhodes", "All Gold", "Mutti", "Koo", "Del Monte"), (
        "Chopped Tomatoes", "Whole Peeled Tomatoes", "Tomato Paste", "Tomato & Onion Mix", "Passata",
        "Peach Slices", "Guava Halves", "Pineapple Pieces", "Fruit Cocktail", "Apricot Halves",
        "Coconut Milk", "Lychees",
    ), ("410 g", "400 g", "825 g", "115 g", "700 g", "500 g"), 19.99, (
        "", "in Syrup", "in Juice", "with Basil", "with Garlic", "Lite", "Organic", "Italian",
    ), fmt="{b} {v} {n}", nutrition="veg"),
    F(PANTRY, "Sauces & Condiments", ("Mrs H.S. Ball's",), ("Chutney",), ("470 g", "1.1 kg", "235 g", "3 kg"),
        34.99, ("Original Recipe", "Hot", "Peach", "Chilli", "Extra Hot", "Fruity", "Sweet & Spicy",
                "Original Recipe Chunky"), nutrition="sauce"),
    F(PANTRY, "Sauces & Condiments", ("All Gold", "Heinz", W, "Rhodes", "Crosse & Blackwell", "Hellmann's"), (
        "Tomato Sauce", "Tomato Ketchup", "Mayonnaise", "Barbecue Sauce", "Mustard", "Salad Cream",
        "Tartare Sauce", "Monkey Gland Sauce", "Chakalaka Relish",
    ), ("700 ml", "500 ml", "375 g", "750 g", "250 ml", "1 l"), 34.99, (
        "", "Original", "Tangy", "Lite", "Squeeze", "Smoky", "Hot", "Reduced Sugar", "Egg-Free",
    ), allergens=("egg", "mustard"), nutrition="sauce"),
    F(PANTRY, "Sauces & Condiments", ("",), (
        "Nando's|Peri-Peri Sauce", "Nando's|Marinade", "Wellington's|Sweet Chilli Sauce",
        "Wellington's|Soy Sauce",
        "Spur|Steak Sauce", "Spur|Basting Sauce", "Spur|Salad Dressing", "Steers|Pepper Sauce",
        "Jimmy's|Killer Sauce", "Jimmy's|Salad Dressing", "Ina Paarman's|Salad Dressing",
        "Ina Paarman's|Cook-In Sauce", "Woolworths|Marinade", "Woolworths|Braai Sauce",
        "Woolworths|Pasta Sauce",
        "Knorr|Cook-In Sauce", "Dolmio|Pasta Sauce", "Rajah|Curry Paste",
    ), ("250 ml", "500 ml", "125 ml", "1 l", "400 g"), 42.99, (
        "Hot", "Extra Hot", "Lemon & Herb", "Garlic", "Medium", "Sticky BBQ", "Mushroom", "Jalapeño",
        "Sweet & Sour", "Honey Mustard", "Balsamic", "Bobotie",
    ), nutrition="sauce"),
    F(PANTRY, "Herbs & Spices", ("Robertsons", "Ina Paarman's", W, "Spice Mecca", "Cape Herb & Spice",
                                 "Rajah", "Freddy Hirsch"), (
        "Braai & Grill Spice", "Barbecue Spice", "Portuguese Chicken Spice", "Mixed Herbs", "Paprika",
        "Ground Cumin", "Turmeric", "Ground Cinnamon", "Steak & Chops Spice", "Seasoned Salt", "Braai Salt",
        "Chicken Spice", "Lemon & Black Pepper", "Curry Powder", "Garam Masala", "Mother-in-Law Masala",
        "Dried Oregano", "Black Peppercorns", "Smoked Paprika", "Chilli Flakes", "Aromat Seasoning",
        "Bay Leaves", "Chicken Stock Powder", "Cajun Spice", "Piri-Piri Flakes",
    ), ("100 ml", "200 ml", "500 g", "1 kg", "50 g"), 34.99,
        ("", "Mild", "Hot", "Organic", "Grinder", "Refill"),
        nutrition="spice"),
    F(PANTRY, "Rice, Pasta & Noodles", ("Tastic", "Spekko", W, "Aunt Caroline", "Tilda", "Mahatma"), (
        "Rice",), ("1 kg", "2 kg", "5 kg", "10 kg", "500 g"), 39.99, (
        "Long Grain Parboiled", "Basmati", "Jasmine", "Brown", "Wild & Long Grain", "Arborio", "Sushi",
        "Quick-Cook", "Aromatic",
    ), nutrition="grain"),
    F(PANTRY, "Rice, Pasta & Noodles", ("Fattis & Monis", W, "Barilla", "Pasta Lensi", "Montagu",
                                        "La Molisana", "De Cecco"), (
        "Spaghetti", "Penne", "Fusilli", "Macaroni", "Lasagne Sheets", "Tagliatelle", "Fettuccine",
        "Linguine", "Farfalle", "Rigatoni", "Orzo", "Gnocchi", "Elbow Macaroni", "Spaghettini", "Conchiglie",
    ), ("500 g", "1 kg", "3 kg", "250 g", "400 g"), 27.99, (
        "", "Wholewheat", "Gluten-Free", "Durum Wheat", "Egg", "Organic", "Bronze-Cut", "Chickpea",
    ), allergens=("gluten", "wheat", "egg"), nutrition="grain"),
    F(PANTRY, "Rice, Pasta & Noodles", ("Maggi", "Knorr", "Indomie", "Nissin", W, "Yum Yum"), (
        "2-Minute Noodles", "Instant Noodles", "Cup Noodles", "Ramen Noodles", "Egg Noodles", "Rice Noodles",
    ), ("73 g", "5 x 73 g", "60 g", "250 g", "400 g"), 8.99, (
        "Chicken", "Beef", "Curry", "Cheese", "Chilli Chicken", "Oriental", "Spicy Beef", "Prawn", "",
    ), allergens=("gluten", "wheat", "soya"), nutrition="grain"),
    F(PANTRY, "Tea", ("Freshpak", "Laager", "Carmién", "Tetley", "Joko", "Five Roses", W, "Glen", "Lipton",
                      "Dilmah", "Twinings"), (
        "Rooibos Tea Bags@pk", "Black Tea Bags@pk", "Green Tea@pk", "Honeybush Tea@pk",
        "Herbal Infusion@pk", "Chai@pk", "Earl Grey@pk", "English Breakfast Tea@pk", "Loose Leaf Rooibos@g",
    ), ("40 pk", "80 pk", "100 pk", "160 pk", "20 pk", "250 g", "125 g"), 39.99, (
        "", "Original", "Vanilla", "Lemon & Ginger", "Decaf", "Organic", "Chai Spice", "Mint", "Berry",
        "Caramel", "Red Espresso",
    ), nutrition="drink"),
    F(PANTRY, "Coffee", ("",), (
        "Ricoffy|Instant Coffee@g", "Nescafé|Classic Instant Coffee@g", "Nescafé|Gold Instant Coffee@g",
        "Frisco|Instant Coffee@g", "Jacobs Krönung|Instant Coffee@g", "Jacobs Krönung|Ground Coffee@g",
        "Douwe Egberts|Pure Gold Instant Coffee@g", "Woolworths|Filter Coffee@g", "Woolworths|Coffee Beans@g",
        "Woolworths|Coffee Capsules@pk", "Bean There|Coffee Beans@g", "Bean There|Ground Coffee@g",
        "Terbodore|Ground Coffee@g", "Lavazza|Coffee Beans@g", "Koffiehuis|Instant Coffee@g",
        "House of Coffees|Ground Coffee@g", "Nescafé|Cappuccino Sachets@pk", "Nescafé|Café Latte Sachets@pk",
        "Nescafé Dolce Gusto|Coffee Capsules@pk", "Koffiehuis|Chicory Blend@g",
    ), ("200 g", "100 g", "250 g", "750 g", "1 kg", "10 pk", "16 pk", "8 pk"), 69.99, (
        "", "Espresso", "Medium Roast", "Dark Roast", "Decaf", "Mocha", "Vanilla", "Ethiopian Yirgacheffe",
        "Colombian", "Crème Brûlée Flavoured",
    ), nutrition="drink"),
    F(PANTRY, "Baking", ("Snowflake", "Golden Cloud", "Sasko", "Champion", W, "Eureka"), (
        "Cake Flour", "Bread Flour", "Self-Raising Flour", "Wholewheat Flour", "Nutty Wheat", "Pizza Flour",
        "Cornflour", "Gluten-Free Flour", "Almond Flour",
    ), ("1 kg", "2.5 kg", "5 kg", "10 kg", "500 g"), 24.99, ("", "Unbleached", "Stoneground", "Organic"),
        allergens=("gluten", "wheat"), nutrition="grain"),
    F(PANTRY, "Baking", ("Huletts", "Selati", "Illovo", W, "Canderel", "Whitworths"), (
        "White Sugar", "Brown Sugar", "Icing Sugar", "Castor Sugar", "Treacle Sugar", "Golden Syrup",
        "Sweetener", "Xylitol", "Demerara Sugar",
    ), ("500 g", "1 kg", "2.5 kg", "5 kg", "10 kg"), 22.99, ("", "Organic", "Sugar-Free", "Refill"),
        nutrition="sugar"),
    F(PANTRY, "Baking", ("Moir's", "Royal", "Pillsbury", "Anchor", W, "Ina Paarman's", "Bakers"), (
        "Custard Powder@g", "Baking Powder@g", "Instant Dry Yeast@10 g;5 x 10 g;500 g",
        "Bicarbonate of Soda@g",
        "Cake Mix@g", "Jelly Powder@80 g;4 x 80 g", "Instant Pudding@g", "Vanilla Essence@ml",
        "Cocoa Powder@g",
        "Chocolate Chips@g", "Sprinkles@g", "Scone Mix@g", "Pancake Mix@g", "Brownie Mix@g",
        "Crème Anglaise Mix@g",
    ), ("80 g", "100 g", "250 g", "500 g", "1 kg", "40 ml", "100 ml"), 24.99, (
        "", "Vanilla", "Chocolate", "Strawberry", "Caramel", "Lemon", "Red Velvet", "Sugar-Free",
        "Gluten-Free",
    ), allergens=("milk", "gluten", "wheat", "egg"), nutrition="sugar"),
    F(PANTRY, "Oils & Vinegars", ("Sunfoil", "Excella", "B-Well", "Willow Creek", W, "Olivado", "Rio Largo",
                                  "Spray & Cook", "Crisco"), (
        "Sunflower Oil", "Extra Virgin Olive Oil", "Olive Oil", "Canola Oil", "Avocado Oil", "Coconut Oil",
        "Cooking Spray", "Balsamic Vinegar", "White Spirit Vinegar", "Brown Spirit Vinegar",
        "Apple Cider Vinegar",
        "Sesame Oil",
    ), ("750 ml", "2 l", "5 l", "500 ml", "250 ml", "1 l", "300 ml"), 49.99, (
        "", "Cold-Pressed", "Organic", "Light", "Garlic-Infused", "Lemon-Infused", "Aged",
    ), nutrition="fat"),
    F(PANTRY, "Spreads", ("Black Cat", W, "Nature's Garden", "Nutty Bites", "Cape Nut Co."), (
        "Peanut Butter", "Almond Butter", "Cashew Butter", "Macadamia Nut Butter", "Mixed Nut Butter",
    ), ("400 g", "800 g", "250 g", "1 kg", "750 g"), 44.99, (
        "Smooth", "Crunchy", "Reduced Oil", "No Added Sugar", "Original", "Salted Caramel", "Chocolate", "",
    ), allergens=("peanuts", "tree nuts"), nutrition="spread"),
    F(PANTRY, "Spreads", ("",), (
        "Nutella|Hazelnut Spread", "Marmite|Yeast Extract", "Bovril|Savoury Spread",
        "Woolworths|Hazelnut Spread",
        "Woolworths|Lemon Curd", "Illovo|Golden Syrup", "Lyle's|Golden Syrup", "Woolworths|Fynbos Honey",
        "Woolworths|Raw Honey", "Nestlé|Caramel Treat",
    ), ("250 g", "125 g", "400 g", "500 g", "750 g", "1 kg"), 54.99, ("", "Original", "Light"),
        allergens=("milk", "tree nuts"), nutrition="spread"),
    F(PANTRY, "Spreads", ("All Gold", "Rhodes", W, "Bonne Maman", "Hartley's", "Naturlite"), (
        "Jam", "Fruit Spread", "Preserve", "Conserve",
    ), ("450 g", "900 g", "340 g", "500 g", "250 g", "375 g"), 39.99, (
        "Apricot", "Strawberry", "Mixed Fruit", "Fig", "Melon & Ginger", "Sweet Orange", "Grape", "Raspberry",
        "Fynbos", "Blueberry", "Cape Gooseberry", "",
    ), nutrition="sugar"),
    F(PANTRY, "Soups & Stock", ("Knorr", "Royco", "Knorrox", "Maggi", W, "Imana", "Ina Paarman's"), (
        "Packet Soup@50 g;4 x 50 g", "Stock Cubes@pk", "Stock Pot@pk", "Liquid Stock@ml",
        "Gravy Granules@g", "Soya Mince@g", "Instant Soup@pk", "Cook-In-Sauce Sachet@g",
    ), ("50 g", "12 pk", "24 pk", "400 g", "1 l", "4 pk", "200 g", "500 ml", "8 pk"), 14.99, (
        "Brown Onion", "Oxtail", "Minestrone", "Beef", "Chicken", "Vegetable", "Thick Vegetable",
        "Cream of Mushroom", "Butternut", "Lamb", "Mince Mate", "Bobotie", "Curry", "Tomato & Onion",
    ), fmt="{b} {v} {n}", allergens=("gluten", "celery", "soya"), nutrition="soup"),
    F(PANTRY, "Dried Fruit & Nuts", (W, "Safari", "Montagu", "Nature's Garden", "Tiger Nuts", "Go Nuts"), (
        "Dried Mango", "Dried Apricots", "Dried Peaches", "Raisins", "Sultanas", "Cranberries",
        "Pitted Dates",
        "Fruit Cake Mix", "Dried Figs", "Mebos", "Dried Apple Rings", "Dried Pears", "Fruit Roll",
    ), ("100 g", "250 g", "500 g", "1 kg", "80 g"), 39.99,
        ("", "Organic", "Unsulphured", "Jumbo", "Sweetened"),
        allergens=("sulphites",), nutrition="fruit"),
    # ---- Frozen ------------------------------------------------------------------------------------
    F(FROZEN, "Frozen Vegetables", ("McCain", W, "Findus", "Farmfresh", "Frozen For You"), (
        "Garden Peas", "Mixed Vegetables", "Stir-Fry Vegetables", "Sweetcorn", "Green Beans",
        "Broccoli Florets",
        "Cauliflower Rice", "Butternut Cubes", "Spinach", "Country Vegetable Mix", "Edamame Beans",
        "Mediterranean Vegetables", "Berry Mix", "Mango Chunks",
    ), ("500 g", "1 kg", "2 kg", "750 g", "350 g"), 34.99, ("", "Baby", "Organic", "Steam Bag", "Petit Pois"),
        nutrition="veg"),
    F(FROZEN, "Frozen Chips", ("McCain", W, "Lamb Weston", "Simplot"), (
        "Slap Chips", "Crinkle Cut Chips", "Country Style Chips", "Shoestring Fries", "Potato Wedges",
        "Hash Browns", "Sweet Potato Fries", "Steakhouse Chips", "Potato Croquettes",
    ), ("750 g", "1 kg", "2 kg", "2.5 kg", "500 g"), 44.99, ("", "Oven", "Air Fryer", "Seasoned", "Skin-On"),
        nutrition="chips"),
    F(FROZEN, "Frozen Fish & Meat", ("Sea Harvest", "I&J", W), (
        "Fish Fingers", "Battered Hake", "Crumbed Hake", "Fish Cakes", "Calamari Strips", "Prawn Cutlets",
        "Hake Fillets", "Fish in Sauce", "Crumbed Prawns",
    ), ("400 g", "800 g", "1 kg", "2 kg", "360 g", "300 g"), 69.99, (
        "", "Lemon & Herb", "Original", "Spicy", "Value Pack", "Family Size", "Crispy",
    ), allergens=("fish", "crustaceans", "gluten", "wheat"), nutrition="fish"),
    F(FROZEN, "Frozen Fish & Meat", (W, "Goldi", "County Fair", "Rainbow", "Fry's", "Quorn"), (
        "Chicken Nuggets", "Chicken Strips", "Crumbed Chicken Fillets", "Chicken Burger Patties",
        "Chicken Wings",
        "Plant-Based Burgers", "Vegetarian Sausages", "Plant-Based Nuggets", "Chicken Schnitzels",
    ), ("400 g", "800 g", "1 kg", "2 kg", "360 g", "300 g"), 69.99, (
        "", "Lemon & Herb", "Original", "Spicy", "Value Pack", "Family Size", "Crispy",
    ), allergens=("fish", "gluten", "wheat", "soya"), nutrition="fish"),
    F(FROZEN, "Ice Cream", ("Ola", W, "Häagen-Dazs", "Magnum", "Dairymaid", "Ben & Jerry's", "Nestlé",
                            "Mister Sweet", "Paul's Homemade"), (
        "Ice Cream@ml", "Frozen Yoghurt@ml", "Sorbet@ml", "Gelato@ml", "Ice Lollies@pk", "Ice Cream Cones@pk",
        "Ice Cream Tubs@ml", "Ice Cream Sandwiches@pk",
    ), ("1 l", "2 l", "500 ml", "4 pk", "6 pk", "460 ml", "1.5 l"), 49.99, (
        "Vanilla", "Chocolate", "Rich 'n Creamy Vanilla", "Strawberry", "Cookies & Cream", "Salted Caramel",
        "Rum & Raisin", "Mint Chocolate Chip", "Mango", "Crème Brûlée", "Bubblegum", "Neapolitan",
        "Pistachio", "Dulce de Leche",
    ), allergens=("milk", "egg", "soya"), nutrition="icecream"),
    F(FROZEN, "Frozen Meals & Pastry", (W, "McCain", "Today", "Mama's", "Pie City", "Dr. Oetker"), (
        "Margherita Pizza", "Pepperoni Pizza", "Four Cheese Pizza", "Steak & Kidney Pie", "Chicken Pie",
        "Cornish Pasties", "Spring Rolls", "Samoosas", "Puff Pastry@g", "Shortcrust Pastry@g",
        "Phyllo Pastry@g",
        "Dim Sum", "Sausage Rolls", "Chicken Wontons", "Spinach & Feta Pie", "Mince Pie",
    ), ("each", "400 g", "800 g", "6 pk", "12 pk", "1 kg", "4 pk"), 59.99, (
        "", "Mini", "Family", "Wood-Fired", "Vegetarian", "Thin Base", "Stone-Baked", "Butter", "Spicy",
    ), allergens=("gluten", "wheat", "milk", "egg"), nutrition="ready"),
    # ---- Beverages ---------------------------------------------------------------------------------
    F(BEV, "Soft Drinks", ("",), (
        "Coca-Cola|Original", "Coca-Cola|No Sugar", "Coca-Cola|Light", "Sprite|Lemon-Lime Soft Drink",
        "Sprite|Zero", "Fanta|Orange", "Fanta|Grape", "Fanta|Pineapple", "Fanta|Zero Orange",
        "Stoney|Ginger Beer",
        "Schweppes|Lemonade", "Schweppes|Indian Tonic Water", "Schweppes|Pink Tonic Water",
        "Schweppes|Dry Lemon",
        "Schweppes|Soda Water", "Sparletta|Crème Soda", "Sparletta|Iron Brew", "Sparletta|Pine Nut",
        "Twist|Lemon", "Twist|Granadilla", "Pepsi|Cola", "Pepsi|Max", "Bashew's|Cream Soda",
        "Woolworths|Lemonade", "Woolworths|Ginger Ale", "Woolworths|Sparkling Rooibos",
        "Appletiser|Sparkling Apple Juice",
        "Grapetiser|Red", "Grapetiser|White", "Appletiser|Red Grape Sparkling Juice",
    ), ("330 ml", "2 l", "6 x 330 ml", "1.5 l", "500 ml", "1 l", "24 x 330 ml", "300 ml", "6 x 300 ml"),
        13.99, nutrition="softdrink"),
    F(BEV, "Juice", ("Ceres", "Liqui-Fruit", W, "Fruitree", "Ocean Spray", "Minute Maid", "Wild Island",
                     "Pure Joy"), (
        "100% Fruit Juice", "Juice Blend", "Nectar", "Fruit Juice",
    ), ("1 l", "2 l", "200 ml", "6 x 200 ml", "5 l", "330 ml", "1.5 l", "500 ml"), 27.99, (
        "Medley of Fruits", "Orange", "Apple", "Mango", "Litchi", "Guava", "Cranberry", "Passion Fruit",
        "Pineapple", "Red Grape", "White Grape", "Orange & Mango", "Tropical", "Berry Blast", "Piña Colada",
        "Pear", "Apricot", "Kiwi & Apple", "Beetroot & Ginger",
    ), fmt="{b} {v} {n}", nutrition="juice"),
    F(BEV, "Juice", ("",), (
        "Oros|Orange Squash", "Oros|Mango Squash", "Clover Tropika|Dairy Fruit Mix",
        "Woolworths|Cold-Pressed Juice",
        "Woolworths|Smoothie", "Halls|Cordial", "Brookes|Lemon Squash", "Woolworths|Kombucha",
    ), ("1 l", "2 l", "5 l", "500 ml", "330 ml"), 34.99, ("", "Tropical", "Berry", "Original", "Sugar-Free"),
        fmt="{b} {v} {n}", nutrition="juice"),
    F(BEV, "Water", ("Bonaqua", "Valpré", "Aquellé", W, "Nestlé Pure Life", "Thirsti", "Aquabella",
                     "La Vie de Luc"), (
        "Still Water", "Sparkling Water", "Flavoured Water", "Spring Water", "Mineral Water", "Soda Water",
    ), ("500 ml", "1.5 l", "5 l", "6 x 500 ml", "750 ml", "1 l", "24 x 500 ml", "10 l"), 12.99, (
        "", "Lemon", "Lime", "Berry", "Naturally Alkaline", "Cucumber & Mint", "Grapefruit",
    ), nutrition="water"),
    F(BEV, "Energy & Sports Drinks", ("Red Bull", "Monster", "Switch", "Dragon", "Score", "Play", "Powerade",
                                      "Energade", "Game"), (
        "Energy Drink", "Sports Drink",
    ), ("500 ml", "250 ml", "440 ml", "6 x 250 ml", "4 x 500 ml"), 21.99, (
        "", "Original", "Sugar-Free", "Berry", "Mango", "Tropical", "Blue", "Naartjie", "Lemon & Lime",
        "Passion Fruit",
    ), nutrition="softdrink"),
    F(BEV, "Iced Tea", ("BOS", "Lipton", "Fuze Tea", W, "Nestea"), ("Iced Tea", "Rooibos Iced Tea"), (
        "500 ml", "1.5 l", "6 x 330 ml", "1 l", "330 ml"), 17.99, (
        "Peach", "Lemon", "Berry", "Lemon & Ginger", "Apple & Mint", "Pomegranate", "Unsweetened", "",
    ), nutrition="softdrink"),
    F(BEV, "Hot Chocolate & Malted Drinks", ("Milo", "Nesquik", "Horlicks", "Cadbury", W, "Ovaltine",
                                            "Nestlé", "Nescafé"), (
        "Hot Chocolate", "Malted Drink", "Milkshake Mix", "Chocolate Drink Powder", "Frappé Mix",
    ), ("250 g", "500 g", "1 kg", "400 g", "10 x 30 g", "200 g"), 49.99, (
        "", "Original", "Chocolate", "Strawberry", "Banana", "Mocha", "Reduced Sugar", "Caramel", "Mint",
    ), allergens=("milk", "gluten", "soya"), nutrition="drinkmix"),
    # ---- Snacks & Sweets ---------------------------------------------------------------------------
    F(SNACKS, "Chips", ("Simba", "Lay's", "Willards", "Pringles", W, "Messaris", "Flanagan's",
                        "Sasko Snacks"), (
        "Chips", "Potato Chips", "Crinkle Cut Chips", "Hand-Cooked Crisps",
    ), ("125 g", "36 g", "120 g", "150 g", "200 g", "6 x 25 g", "105 g", "1 kg"), 22.99, (
        "Chutney", "Mrs H.S. Ball's Chutney", "Salt & Vinegar", "Cheese & Onion", "Smoked Beef",
        "Tomato Sauce",
        "Sour Cream & Onion", "Lightly Salted", "Spring Onion & Cheese", "Sweet Chilli", "Barbecue",
        "Fruit Chutney", "Peri-Peri", "Jalapeño", "Biltong", "Salted", "Cheese", "Mexican Chilli",
        "Sea Salt & Black Pepper", "Honey Mustard",
    ), nutrition="chips"),
    F(SNACKS, "Chips", ("Doritos", "NikNaks", "Fritos", "Willards Cheese Curls", "Tostitos", "Ghost Pops",
                        "Big Korn Bites", "Jiggies"), (
        "Corn Chips", "Maize Snacks", "Tortilla Chips", "Corn Curls", "Puffs",
    ), ("150 g", "135 g", "55 g", "120 g", "500 g", "6 x 20 g"), 19.99, (
        "Sweet Chilli Pepper", "Cheese Supreme", "Cheese", "Spicy Chilli", "Barbecue", "Chutney", "Tomato",
        "Salsa", "Nacho Cheese", "Original", "Sour Cream & Chives", "Jalapeño & Lime",
    ), nutrition="chips"),
    F(SNACKS, "Chocolate", ("Cadbury Dairy Milk", "Beacon", "Lindt Excellence", W, "Nestlé", "Cadbury",
                            "Lindt", "Beyers"), (
        "Chocolate Slab", "Chocolate", "Chocolate Slab Share Pack",
    ), ("80 g", "150 g", "100 g", "90 g", "300 g"), 32.99, (
        "Whole Nut", "Top Deck", "Caramel", "Mint Crisp", "Bubbly", "Milk", "Dark", "70% Cocoa",
        "Fruit & Nut",
        "Rum & Raisin", "Coconut", "Oreo", "Salted Caramel", "White", "Hazelnut", "Milk Tart",
        "Lemon Meringue",
        "Chocolate Mousse", "Sea Salt", "Peppermint Crisp", "Crème Brûlée",
    ), fmt="{b} {v} {n}", allergens=("milk", "soya", "tree nuts", "gluten"), nutrition="chocolate"),
    F(SNACKS, "Chocolate", ("",), (
        "Nestlé|Bar One", "Nestlé|Kit Kat 4 Finger", "Nestlé|Tex", "Nestlé|Lunch Bar", "Nestlé|Aero Mint",
        "Nestlé|Smarties", "Cadbury|PS", "Cadbury|Crunchie", "Cadbury|Lunch Bar", "Cadbury|Astros",
        "Kinder|Bueno", "Ferrero|Rocher", "Toblerone|Milk Chocolate", "Beacon|Mallow Eggs", "Beacon|Nutties",
        "Cadbury|Éclairs",
    ), ("each", "6 pk", "4 pk", "62 g", "150 g", "100 g", "200 g"), 16.99, ("", "Share Pack", "Mini"),
        allergens=("milk", "soya", "gluten", "tree nuts", "peanuts"), nutrition="chocolate"),
    F(SNACKS, "Sweets", ("Beacon", "Maynards", "Wilson's", W, "Wicked Fruits", "Manhattan", "Sweetie Pie"), (
        "Sweets", "Wine Gums", "Jelly Babies", "Toffees", "Chews", "Jelly Beans", "Marshmallows",
        "Sour Worms", "Candy Mix", "Lollipops", "Gummies", "Fudge",
    ), ("75 g", "125 g", "200 g", "100 g", "1 kg", "40 g", "10 pk", "45 g", "500 g"), 17.99, (
        "", "Original", "Sour", "Fruit", "Cola", "Strawberry", "Mint", "Assorted", "Tropical", "Sugar-Free",
        "Jumbo", "Mini",
    ), nutrition="sweets"),
    F(SNACKS, "Sweets", ("",), (
        "Chappies|Bubblegum", "Beacon|Sparkles", "Beacon|Fizzers", "Beacon|Jelly Tots", "Mentos|Mints",
        "Halls|Mentholyptus", "Super C|Rolls", "Wilson's|XXX Mints", "Stimorol|Chewing Gum",
        "Airwaves|Chewing Gum",
    ), ("each", "10 pk", "24 pk", "40 g", "100 g", "125 g", "200 g"), 6.99,
        ("", "Original", "Sour", "Assorted", "Sugar-Free", "Strawberry", "Mint"),
        nutrition="sweets"),
    F(SNACKS, "Biscuits & Crackers", ("Bakers",), ("Biscuits",), ("200 g", "125 g", "400 g", "1 kg", "500 g"),
        21.99, (
        "Tennis", "Romany Creams", "Eet-Sum-Mor", "Marie", "Choc-Kits", "Lemon Creams", "Zoo", "Iced Zoo",
        "Ginger Nut", "Blue Label Marie", "Nuttikrust", "Boudoirs", "Topper", "Toppers Strawberry",
        "Romany Creams Mint", "Tennis Lemon", "Good Morning",
    ), fmt="{b} {v} {n}", allergens=("gluten", "wheat", "milk", "soya"), nutrition="biscuit"),
    F(SNACKS, "Biscuits & Crackers", (W, "Henro", "Carr's", "McVitie's", "Baumann's", "Pyotts", "Oreo"), (
        "Biscuits", "Cookies", "Shortbread", "Wafers", "Biscotti", "Digestives",
    ), ("200 g", "125 g", "100 g", "400 g", "500 g", "250 g", "154 g"), 27.99, (
        "", "Coconut", "Chocolate Chip", "Oat", "Butter", "Red Velvet", "Mint", "Vanilla", "Lemon", "Caramel",
        "Hazelnut", "Choc-Orange", "Almond", "Ginger",
    ), fmt="{b} {v} {n}", allergens=("gluten", "wheat", "milk", "soya"), nutrition="biscuit"),
    F(SNACKS, "Biscuits & Crackers", ("Bakers Provita", "Bakers Salticrax", W, "Carr's", "Ryvita"), (
        "Crackers", "Cream Crackers", "Crispbread", "Rice Cakes", "Water Biscuits",
    ), ("200 g", "250 g", "125 g", "100 g"), 24.99, (
        "", "Original", "Cheddar", "Multigrain", "Wholewheat", "Sesame", "Black Pepper", "Seeded",
    ), allergens=("gluten", "wheat", "sesame"), nutrition="biscuit"),
    F(SNACKS, "Nuts & Seeds", (W, "Safari", "Tiger Nuts", "Go Nuts", "Nature's Garden", "Beacon Nut Mix",
                               "Rhodes", "Just Nuts"), (
        "Cashews", "Almonds", "Macadamias", "Peanuts", "Pecan Nuts", "Pistachios", "Walnuts", "Mixed Nuts",
        "Trail Mix", "Pumpkin Seeds", "Sunflower Seeds", "Brazil Nuts", "Peanuts & Raisins", "Hazelnuts",
    ), ("100 g", "200 g", "400 g", "1 kg", "30 g", "500 g", "150 g"), 44.99, (
        "", "Salted", "Raw", "Roasted", "Honey Roasted", "Chilli", "Smoked", "Biltong Spiced", "Activated",
        "Unsalted", "Sweet & Salty",
    ), allergens=("peanuts", "tree nuts"), nutrition="nuts"),
    F(SNACKS, "Snack Bars", ("Jungle", "Nature Valley", W, "Bokomo", "Pronutro", "Go Nuts", "Cadbury",
                             "Futurelife", "Kellogg's"), (
        "Energy Bars", "Oat Bars", "Protein Bars", "Granola Bars", "Muesli Bars", "Nut Bars", "Rice Bars",
    ), ("5 x 40 g", "6 pk", "40 g", "4 pk", "12 pk", "60 g"), 44.99, (
        "", "Original", "Chocolate", "Peanut Butter", "Berry", "Honey & Almond", "Salted Caramel", "Yoghurt",
        "Coconut", "Cranberry",
    ), allergens=("gluten", "oats", "peanuts", "tree nuts", "milk"), nutrition="cereal"),
    # ---- Household ---------------------------------------------------------------------------------
    F(HOUSE, "Cleaning", ("",), (
        "Sunlight|Dishwashing Liquid", "Handy Andy|Cream Cleaner", "Domestos|Thick Bleach", "Jik|Bleach",
        "Mr Muscle|Multi-Surface Cleaner", "Mr Muscle|Kitchen Cleaner", "Mr Muscle|Bathroom Cleaner",
        "Pledge|Furniture Polish", "Windowlene|Glass Cleaner", "Vim|Scouring Powder", "Harpic|Toilet Cleaner",
        "Woolworths|Dishwashing Liquid", "Woolworths|Multi-Surface Cleaner",
        "Woolworths EarthSense|Floor Cleaner",
        "Woolworths EarthSense|Dishwashing Liquid", "Ecover|Multi-Surface Cleaner", "Dettol|Disinfectant",
        "Handy Andy|Floor Cleaner", "Domestos|Toilet Cleaner", "Sunlight|Dishwashing Liquid Refill",
    ), ("400 ml", "750 ml", "1.5 l", "500 ml", "5 l", "1 l", "2 l", "300 ml"), 34.99, (
        "", "Original", "Lemon", "Lemon Fresh", "Lavender", "Regular", "Ammonia", "Pine", "Ocean Fresh",
        "Fragrance-Free", "Rose", "Eucalyptus", "Citrus", "Aloe Vera",
    )),
    F(HOUSE, "Laundry", ("",), (
        "OMO|Auto Washing Powder@g", "OMO|Hand Washing Powder@g", "OMO|Washing Liquid@ml",
        "Skip|Auto Washing Powder@g", "Skip|Washing Capsules@pk", "Skip|Washing Liquid@ml",
        "Ariel|Washing Liquid@ml", "Ariel|Washing Pods@pk", "Surf|Hand Washing Powder@g",
        "Sta-Soft|Fabric Softener@ml", "Comfort|Fabric Conditioner@ml",
        "Sunlight|Laundry Bar@500 g;4 x 500 g",
        "Sunlight|2-in-1 Washing Powder@g", "Maq|Washing Powder@g", "Vanish|Stain Remover@500 g;1 kg;1 l",
        "Woolworths|Washing Liquid@ml", "Woolworths EarthSense|Laundry Liquid@ml", "Dynamo|Washing Liquid@ml",
    ), ("1 kg", "2 kg", "3 kg", "5 kg", "1.5 l", "2 l", "4 l", "500 ml", "30 pk", "500 g", "20 pk"), 89.99, (
        "", "Regular", "Sensitive", "Lavender", "Spring Fresh", "Colour", "Intense", "Baby", "Active Clean",
        "Oxi Action", "Concentrated",
    )),
    F(HOUSE, "Paper & Wraps", ("",), (
        "Twinsaver|Toilet Paper@9 pk;18 pk;24 pk;48 pk", "Twinsaver|Kitchen Towel@2 pk;4 pk;6 pk",
        "Twinsaver|Facial Tissues@100 pk;4 x 100 pk", "Baby Soft|Toilet Paper@9 pk;18 pk;24 pk;48 pk",
        "Baby Soft|Kitchen Towel@2 pk;4 pk;6 pk", "Kleenex|Facial Tissues@100 pk;4 x 100 pk",
        "Kleenex|Pocket Tissues@6 pk;10 pk", "Fluffy|Kitchen Towel@2 pk;4 pk",
        "Renova|Toilet Paper@9 pk;18 pk",
        "Softex|Toilet Paper@9 pk;18 pk;48 pk", "Woolworths|Toilet Paper@9 pk;18 pk;24 pk",
        "Woolworths|Paper Serviettes@20 pk;100 pk", "Woolworths EarthSense|Toilet Paper@9 pk;18 pk",
        "Glad|Cling Wrap@m", "Glad|Freezer Bags@20 pk;48 pk", "Glad|Refuse Bags@20 pk",
        "Glad|Sandwich Bags@100 pk;48 pk", "Woolworths|Foil@m", "Woolworths|Baking Paper@m",
        "Freshpak|Wax Paper@m",
    ), (
        "9 pk", "18 pk", "24 pk", "4 pk", "2 pk", "30 m", "10 m", "20 pk", "48 pk", "6 pk", "100 pk", "60 m",
    ), 69.99, (
        "", "2-Ply", "3-Ply", "Ultra Soft", "Unscented", "Recycled", "Jumbo", "Heavy Duty", "Extra Strong",
        "Compostable",
    )),
    F(HOUSE, "Dishwasher", ("Finish", "Sunlight", W, "Woolworths EarthSense", "Fairy"), (
        "Dishwasher Tablets@pk", "Rinse Aid@ml", "Dishwasher Salt@g", "Dishwasher Gel@ml",
    ), ("28 pk", "50 pk", "100 pk", "500 ml", "1 kg", "2 kg", "750 ml"), 129.99, (
        "", "Powerball", "Quantum", "All-in-1", "Lemon", "Original", "Eco",
    )),
    F(HOUSE, "Home & Braai", ("",), (
        "Doom|Insect Spray@ml", "Doom|Mosquito Coils@pk", "Mortein|Insect Spray@ml",
        "Airwick|Air Freshener@ml",
        "Glade|Air Freshener@ml", "Glade|Scented Candle@pk", "Energizer|Batteries@pk",
        "Duracell|Batteries@pk", "Eveready|Batteries@pk", "Lion|Matches@10 pk", "Bic|Lighter@each;2 pk",
        "Blitz|Firelighters@pk", "Woolworths|Braai Charcoal@g", "Woolworths|Braai Wood@g",
        "Evergreen|Sekelbos Braai Wood@g", "Woolworths|Scented Diffuser@100 ml;200 ml",
        "Woolworths|Dinner Candles@pk", "Eurolux|LED Light Bulbs@pk",
    ), ("300 ml", "500 ml", "4 pk", "8 pk", "10 pk", "2 kg", "4 kg", "10 kg", "each", "2 pk"), 69.99, (
        "", "Lemon", "Lavender", "Fresh Linen", "AA", "AAA", "Multi-Insect", "Odourless", "Vanilla",
        "Rooibos & Honey", "Sandalwood", "Ocean Breeze", "Kameeldoring",
    )),
    # ---- Baby --------------------------------------------------------------------------------------
    F(BABY, "Nappies & Wipes", ("Pampers", "Huggies", W, "Huggies Gold", "Pampers Premium Care",
                                "Pampers Active Baby", "Little Angels", "Cuddlers"), (
        "Nappies Size 1", "Nappies Size 2", "Nappies Size 3", "Nappies Size 4", "Nappies Size 5",
        "Nappies Size 6", "Newborn Nappies", "Pants Size 4", "Pants Size 5", "Baby Wipes", "Sensitive Wipes",
        "Swim Pants",
    ), ("44 pk", "58 pk", "76 pk", "100 pk", "30 pk", "80 pk", "3 x 64 pk", "24 pk", "66 pk"), 179.99, (
        "", "Value Pack", "Jumbo", "Mega Box", "Fragrance-Free", "Aqua", "Dry Comfort", "Cotton Soft",
    )),
    F(BABY, "Baby Food", ("Purity", W, "Little Green Kitchen", "Heinz", "Rafferty's Garden"), (
        "Baby Food", "Purée Pouch", "Finger Food",
    ), ("125 ml", "80 ml", "200 ml", "110 g", "4 x 125 ml"), 19.99, (
        "Butternut", "Apple", "Banana", "Sweet Potato", "Mixed Vegetables", "Chicken & Vegetables",
        "Apple & Pear",
        "Mango", "Beef & Veg", "Pumpkin & Carrot", "Custard", "Guava",
    ), allergens=("milk",), nutrition="babyfood"),
    F(BABY, "Baby Food", ("Nan", "Lactogen", "Infacare", "Nestlé Cerelac", "Purity", "Similac", "Aptamil"), (
        "Infant Formula", "Follow-On Formula", "Growing-Up Milk", "Infant Cereal@250 g;500 g~49.99",
    ), ("400 g", "900 g", "1.8 kg", "250 g", "500 g"), 189.99, (
        "", "Stage 1", "Stage 2", "Stage 3", "Optipro", "Comfort", "Lactose-Free", "Wheat & Milk",
    ), allergens=("milk", "gluten", "soya"), nutrition="babyfood"),
    F(BABY, "Baby Care", ("Johnson's", "Elizabeth Anne's", "Bennetts", "Purity", W, "Baby Soft",
                          "Sudocrem", "Bepanthen", "Vaseline", "Dove Baby"), (
        "Baby Lotion@ml", "Baby Oil@ml", "Baby Powder@g", "Baby Shampoo@ml", "Baby Bath@ml", "Nappy Cream@g",
        "Baby Wash@ml", "Aqueous Cream@g", "Petroleum Jelly@ml", "Bum Cream@g", "Baby Soap@g",
        "Cotton Buds@pk",
    ), ("200 ml", "500 ml", "100 ml", "250 g", "500 g", "1 l", "125 g", "60 g", "75 g", "200 pk"), 54.99, (
        "", "Original", "Sensitive", "Lavender", "Aloe Vera", "Chamomile", "Fragrance-Free", "Night-Time",
        "Rich Moisture",
    )),
    # ---- Health & Beauty ---------------------------------------------------------------------------
    F(HB, "Dental Care", ("Colgate", "Aquafresh", "Sensodyne", "Close-Up", "Mentadent", W, "Aim",
                          "Arm & Hammer"), (
        "Toothpaste", "Kids Toothpaste",
    ), ("100 ml", "75 ml", "150 ml", "2 x 100 ml"), 39.99, (
        "", "Maximum Cavity Protection", "Total", "Optic White", "Sensitive", "Whitening", "Cool Mint",
        "Herbal", "Charcoal", "Fresh Gel", "Gum Care", "Pro-Enamel", "Clove",
    )),
    F(HB, "Dental Care", ("",), (
        "Listerine|Mouthwash@ml", "Colgate|Plax Mouthwash@ml", "Oral-B|Dental Floss@m",
        "Oral-B|Toothbrush@pk",
        "Colgate|Toothbrush@pk", "Oral-B|Electric Toothbrush Heads@pk", "Woolworths|Bamboo Toothbrush@pk",
        "Sensodyne|Toothbrush@pk", "Woolworths|Interdental Brushes@pk",
    ), ("each", "2 pk", "3 pk", "250 ml", "500 ml", "50 m"), 49.99, (
        "", "Soft", "Medium", "Cool Mint", "Total Care", "Sensitive", "Whitening",
    )),
    F(HB, "Bath & Body", ("Dove", "Lux", "Protex", "Nivea", "Palmolive", "Lifebuoy", "Vaseline", W,
                          "Clere", "Johnson's", "Satiskin", "Shower to Shower"), (
        "Body Wash@ml", "Bar Soap@g", "Shower Gel@ml", "Body Lotion@ml", "Hand Wash@ml",
        "Hand Cream@75 ml;100 ml",
        "Body Cream@ml", "Intensive Care Lotion@ml", "Bath Salts@500 g;1 kg", "Bubble Bath@ml", "Body Oil@ml",
        "Glycerine@100 ml", "Hand Sanitiser@ml",
    ), (
        "400 ml", "175 g", "750 ml", "250 ml", "500 ml", "100 g", "3 x 100 g", "1 l", "150 ml", "75 ml",
    ), 44.99, (
        "", "Original", "Cocoa Butter", "Aloe Vera", "Shea Butter", "Deep Moisture", "Antibacterial",
        "Lavender", "Rooibos", "Marula Oil", "Sensitive", "Men", "Coconut", "Rose", "Fresh", "Oatmeal",
    )),
    F(HB, "Hair Care", ("Pantene", "Head & Shoulders", "Sunsilk", "TRESemmé", "Dove", "L'Oréal Elvive",
                        "Garnier Fructis", W, "Dark & Lovely", "Sofn'free", "ORS", "Inecto", "Schwarzkopf"), (
        "Shampoo@ml", "Conditioner@ml", "Hair Mask@ml", "Leave-In Conditioner@ml", "Hair Oil@ml",
        "Styling Gel@ml", "Hair Spray@ml", "Hair Food@g", "Dry Shampoo@ml", "Relaxer@g", "Hair Colour@pk",
        "Curl Cream@ml",
    ), (
        "400 ml", "200 ml", "600 ml", "1 l", "250 ml", "125 ml", "300 ml", "500 ml", "150 g", "250 g", "each",
    ), 64.99, (
        "", "Anti-Dandruff", "Classic Clean", "Repair & Protect", "Smooth & Silky", "Colour Protect",
        "Curl Defining", "Volume", "Argan Oil", "Coconut", "Moisture", "Keratin", "Tea Tree", "Sensitive",
        "Hydra", "Kids",
    )),
    F(HB, "Deodorant & Shaving", ("Shield", "Nivea", "Nivea Men", "Dove", "Dove Men+Care", "Axe", "Mum",
                                  "Rexona", "Playgirl", "Brut", "Adidas", "Mitchum"), (
        "Roll-On@50 ml;2 x 50 ml", "Aerosol Deodorant@150 ml;200 ml;250 ml", "Antiperspirant@ml",
        "Body Spray@120 ml;150 ml;200 ml", "Stick Deodorant@45 g", "Gillette|Shaving Gel@200 ml",
        "Gillette|Disposable Razors@pk", "Gillette|Razor Blades@pk", "Bic|Disposable Razors@pk",
        "Nivea Men|Aftershave Balm@100 ml", "Nivea Men|Shaving Foam@200 ml;250 ml",
    ), ("50 ml", "150 ml", "200 ml", "120 ml", "5 pk", "4 pk", "250 ml", "100 ml", "10 pk"), 39.99, (
        "", "Fresh", "Invisible Black & White", "Sensitive", "Cool", "Original", "Extreme", "Dry", "Pure",
        "Powder", "Active", "Clinical", "Africa", "Sport",
    )),
    F(HB, "Skin & Sun Care", ("Nivea", "Garnier", "Neutrogena", "Ponds", "Clere", "Eucerin", "Cetaphil",
                              "La Roche-Posay", W, "Nimue", "Bioderma", "Everysun", "Island Tribe",
                              "Bio-Oil"), (
        "Face Wash@150 ml;200 ml", "Moisturiser@50 ml;100 ml", "Night Cream@50 ml", "Day Cream@50 ml",
        "Micellar Water@200 ml;400 ml", "Sunscreen SPF 50@ml", "Sunscreen SPF 30@ml", "After Sun Gel@ml",
        "Lip Balm@g", "Eye Cream@25 ml", "Serum@30 ml", "Face Mask@50 ml;each", "Toner@200 ml",
        "Skin Care Oil@60 ml;125 ml",
    ), (
        "50 ml", "150 ml", "200 ml", "400 ml", "100 ml", "4.8 g", "30 ml", "125 ml", "60 ml", "25 ml",
    ), 119.99, (
        "", "Hydrating", "Oil-Free", "Sensitive", "Vitamin C", "Anti-Ageing", "Even Tone", "Gentle",
        "Hyaluronic", "Water Resistant", "Kids", "Mattifying", "Niacinamide",
    )),
    F(HB, "Medicines & Vitamins", ("",), (
        "Panado|Tablets@pk", "Panado|Syrup@ml", "Disprin|Effervescent Tablets@pk",
        "Grand-Pa|Headache Powders@pk", "Rennie|Chewables@pk", "Vicks|Vapour Rub@g", "Strepsils|Lozenges@pk",
        "Corenza C|Effervescent Tablets@pk", "Berocca|Effervescent Tablets@pk", "Centrum|Multivitamin@pk",
        "Vital|Vitamin C@pk", "Vital|Magnesium@pk", "Vital|Iron@pk", "Vital|Zinc@pk",
        "Solal|Vitamin D3@pk", "Bioplus|Sachets@pk", "Med-Lemon|Sachets@pk", "Eno|Sachets@pk",
        "Allergex|Tablets@pk", "Woolworths|Omega-3 Fish Oil@pk", "Woolworths|Probiotic@pk",
        "Sinutab|Tablets@pk", "Woolworths|Multivitamin@pk", "Vicks|Lozenges@pk", "Woolworths|Cough Syrup@ml",
    ), ("20 pk", "24 pk", "38 pk", "10 pk", "30 pk", "60 pk", "100 pk", "100 ml", "200 ml", "50 g", "12 pk",
        "15 pk"), 59.99, (
        "", "Extra", "Original", "Honey & Lemon", "Orange", "Mixed Berry", "Sugar-Free", "Kids",
        "Adult", "Immune", "Energy", "Women's", "Men's", "Cherry", "Blackcurrant",
    )),
    F(HB, "Feminine Care", ("Always", "Lil-lets", "Kotex", "Stayfree", "Carefree", W, "Dignity",
                            "Pinky Promise", "Libresse"), (
        "Maxi Pads", "Ultra Pads", "Tampons", "Pantyliners", "Menstrual Cup", "Period Underwear",
        "Night Pads",
    ), ("8 pk", "10 pk", "16 pk", "20 pk", "32 pk", "40 pk", "each", "14 pk", "24 pk"), 34.99, (
        "", "Regular", "Super", "Super Plus", "Normal", "Long", "Unscented", "Organic Cotton", "Night",
        "Cotton Feel", "Value Pack",
    )),
    # ---- Pets --------------------------------------------------------------------------------------
    F(PETS, "Dog Food", ("Pedigree", "Bobtail", "Montego Classic", "Hill's Science Diet", "Royal Canin",
                         "Ultra Dog", "Husky", "Optimizor", "Jock", "Dogmor", W, "Acana", "Purina Pro Plan",
                         "Montego Karoo", "Canine Cuisine"), (
        "Dry Dog Food@2 kg;6 kg;8 kg;12 kg;20 kg;25 kg", "Wet Dog Food@385 g;775 g;6 x 385 g~27.99",
        "Puppy Food@2 kg;6 kg;12 kg", "Dog Biscuits@500 g;1.75 kg~44.99",
    ), ("2 kg", "8 kg", "20 kg", "775 g", "385 g"), 109.99, (
        "", "Adult Beef", "Puppy Chicken", "Lamb & Rice", "Senior", "Small Breed", "Large Breed",
        "Chicken & Vegetables", "Sensitive", "Grain-Free", "Original", "Ostrich", "Light",
    ), nutrition="pet"),
    F(PETS, "Dog Treats", ("Pedigree", "Beefy", "Montego", W, "Dogmor", "Ultra Dog", "Hill's Science Diet"), (
        "Dog Treats@g", "Dental Sticks@pk", "Dog Chews@g+pk", "Rawhide Bones@pk", "Biltong Treats@g",
    ), ("150 g", "7 pk", "28 pk", "500 g", "each", "5 pk", "100 g"), 44.99, (
        "", "Beef", "Chicken", "Ostrich", "Liver", "Small Dog", "Large Dog", "Puppy",
    ), nutrition="pet"),
    F(PETS, "Cat Food", ("Whiskas", "Felix", "Catmor", "Hill's Science Diet", "Royal Canin", "Friskies",
                         "Fancy Feast", "Montego", "Ultra Cat", "Sheba", W, "Cat Caviar"), (
        "Dry Cat Food@1.5 kg;4 kg;7 kg;400 g", "Kitten Food@400 g;1.5 kg~54.99",
    ), ("1.5 kg", "400 g", "4 kg", "7 kg"), 119.99, (
        "", "Tuna", "Chicken", "Ocean Fish", "Salmon", "Indoor", "Sterilised", "Senior", "Hairball",
        "Chicken & Liver",
    ), nutrition="pet"),
    F(PETS, "Cat Food", ("Whiskas", "Felix", "Friskies", "Fancy Feast", "Sheba", W, "Montego"), (
        "Wet Cat Food Pouch@85 g;12 x 85 g", "Cat Food Tin@400 g;6 x 400 g~24.99", "Cat Treats@60 g~19.99",
        "Cat Milk@200 ml",
    ), ("85 g", "400 g", "60 g", "200 ml"), 12.99, (
        "", "Tuna", "Chicken", "Ocean Fish", "Beef in Gravy", "Salmon", "Mackerel", "Chicken & Liver",
        "Kitten",
    ), nutrition="pet"),
    F(PETS, "Cat Litter", ("Catsan", "Pettex", W, "Cat Caviar", "Ever Clean", "Kitty Friend"), (
        "Cat Litter", "Clumping Cat Litter", "Silica Cat Litter",
    ), ("5 l", "10 l", "20 l", "5 kg"), 69.99, ("", "Unscented", "Lavender", "Natural", "Odour Control"),
        ),
    F(PETS, "Pet Care", ("",), (
        "Kong|Chew Toy@each", "Frontline|Tick & Flea Treatment@each;3 pk~249.99",
        "Bravecto|Tick & Flea Chew@each~599.99",
        "Nexgard|Spectra Chews@3 pk~699.99", "Beaphar|Dog Shampoo@250 ml~89.99",
        "Tuffies|Dog Bed@S;M;L;XL~699.99",
        "Trixie|Cat Scratcher@each", "Woolworths|Poop Bags@60 pk;4 x 60 pk~39.99", "Marltons|Dog Lead@each",
        "Marltons|Pet Bowl@S;M;L", "Kong|Rope Toy@each", "Trixie|Cat Toy@each;3 pk",
        "Woolworths|Pet Wipes@60 pk~49.99",
        "Milbemax|Deworming Tablets@2 pk;4 pk~159.99", "Woolworths|Dog Bed@S;M;L;XL~399.99",
    ), ("each", "2 pk", "3 pk", "250 ml", "60 pk", "S", "M", "L", "XL", "4 pk"), 129.99, (
        "", "Small Dog", "Medium Dog", "Large Dog", "Puppy", "Cat", "Durable", "Natural", "Reflective",
    )),
    # ---- Deli & Ready Meals ------------------------------------------------------------------------
    F(DELI, "Ready Meals", (W,), (
        "Chicken Tikka Masala", "Butter Chicken", "Bobotie", "Beef Lasagne", "Cottage Pie", "Macaroni Cheese",
        "Thai Green Chicken Curry", "Chicken à la King", "Lamb Curry", "Spaghetti Bolognese",
        "Chicken & Mushroom Pie", "Beef Stroganoff", "Cape Malay Chicken Curry", "Oxtail Potjie",
        "Vegetable Lasagne", "Chicken Pad Thai", "Tomato Bredie", "Chicken Biryani", "Bunny Chow Filling",
        "Mushroom Risotto", "Beef Bourguignon", "Chilli Con Carne", "Chicken Enchiladas", "Fish Pie",
        "Butternut & Feta Quiche", "Boerewors & Mash", "Lamb Tagine", "Beef Rendang",
    ), ("400 g", "700 g", "1 kg", "350 g", "300 g"), 69.99, (
        "", "Family", "Lite", "Slow-Cooked", "Signature", "Plant-Based", "Keto", "Kids",
    ), allergens=("milk", "gluten", "wheat", "celery", "mustard"), nutrition="ready"),
    F(DELI, "Dips & Spreads", (W, "Sabra", "Lancewood", "Pesto Princess", "Bohemian Kitchen",
                               "Mediterranean Delicacies"), (
        "Hummus", "Guacamole", "Tzatziki", "Pesto", "Baba Ganoush", "Cream Cheese Dip", "Salsa",
        "Taramasalata",
        "Harissa", "Olive Tapenade", "Aioli",
    ), ("200 g", "250 g", "125 g", "500 g", "150 g", "100 g"), 36.99, (
        "", "Original", "Roasted Red Pepper", "Jalapeño", "Basil", "Sun-dried Tomato", "Caramelised Onion",
        "Beetroot", "Smoked Chilli", "Garlic & Herb", "Coriander", "Chunky",
    ), allergens=("sesame", "milk", "tree nuts"), nutrition="dip"),
    F(DELI, "Cold Meats", (W, "Eskort", "Enterprise", "Renown", "Bull Brand", "Mielie", "Dick Jansen"), (
        "Chicken Polony", "Beef Polony", "Salami", "Smoked Chicken Breast", "Pastrami", "Viennas",
        "Cocktail Viennas", "Russians", "Frankfurters", "Chorizo", "Pepperoni", "Prosciutto", "Mortadella",
        "Ham Off the Bone", "Roast Beef", "Chicken Viennas",
    ), ("125 g", "200 g", "500 g", "1 kg", "250 g", "100 g", "80 g", "375 g"), 39.99, (
        "", "Sliced", "Garlic", "Smoked", "Spicy", "Black Pepper", "Honey Mustard", "Thinly Sliced",
        "Italian",
        "Danish", "Cheese",
    ), allergens=("sulphites", "soya", "milk"), nutrition="meat"),
    F(DELI, "Salads & Snacks", (W,), (
        "Greek Salad", "Caprese Salad", "Potato Salad", "Coleslaw", "Pasta Salad", "Chicken Caesar Salad",
        "Quinoa Salad", "Sushi Platter", "California Rolls", "Salmon Nigiri", "Chicken Wrap",
        "Chicken Mayo Sandwich",
        "Egg Mayo Sandwich", "Ham & Cheese Croissant", "Vegetable Crudités", "Cheese Platter",
        "Samoosa Platter",
        "Mini Quiches", "Beetroot Salad", "Three Bean Salad", "Roasted Vegetable Couscous",
    ), ("each", "200 g", "300 g", "400 g", "8 pk", "12 pk", "250 g", "350 g"), 54.99, (
        "", "Mini", "Large", "Vegan", "Lite", "Deluxe", "Sharing", "Spicy", "Low Carb",
    ), allergens=("milk", "egg", "gluten", "wheat", "fish", "soya", "sesame"), nutrition="ready"),
    F(DELI, "Olives & Antipasti", (W, "Buffalo Ridge", "Willow Creek", "Mediterranean Delicacies",
                                   "Kalamata Gold", "Olivado", "Peppadew"), (
        "Olives", "Stuffed Olives", "Marinated Feta", "Sun-dried Tomatoes", "Roasted Peppers",
        "Artichoke Hearts", "Caperberries", "Peppadew Peppers", "Gherkins", "Pickled Onions",
        "Jalapeño Slices",
    ), ("200 g", "400 g", "250 g", "750 g", "180 g", "1 kg", "300 g"), 42.99, (
        "", "Kalamata", "Green", "Black", "Pitted", "Garlic & Herb", "Chilli", "Lemon", "Mild", "Hot",
        "Sweet Piquanté",
    ), allergens=("milk", "sulphites"), nutrition="dip"),
)

NUTRITION_PROFILES: dict[str, tuple[tuple[float, float], ...]] = {
    # (energy kJ, protein g, carbohydrate g, of which sugar (share of carbs), fat g, sodium mg) per 100 g/ml
    "fruit": ((150, 380), (0.3, 1.5), (8, 22), (0.6, 0.95), (0.1, 0.8), (0, 10)),
    "veg": ((60, 360), (0.8, 4.0), (2, 18), (0.1, 0.6), (0.1, 0.8), (2, 80)),
    "meat": ((450, 1500), (14, 32), (0, 6), (0.0, 0.5), (3, 30), (50, 2200)),
    "fish": ((350, 1100), (12, 24), (0, 22), (0.0, 0.2), (0.5, 14), (70, 900)),
    "milk": ((140, 290), (3.0, 3.6), (4.4, 5.2), (0.95, 1.0), (0.1, 3.5), (35, 55)),
    "egg": ((560, 640), (11.5, 13.5), (0.3, 1.1), (0.5, 1.0), (8.5, 11.0), (120, 150)),
    "yoghurt": ((220, 560), (3.0, 10.0), (3.5, 16.0), (0.6, 0.95), (0.1, 10.0), (35, 70)),
    "cheese": ((950, 1800), (17, 33), (0.1, 4.0), (0.1, 1.0), (18, 36), (400, 1700)),
    "fat": ((2800, 3700), (0.0, 1.0), (0.0, 1.0), (0.0, 1.0), (75, 100), (0, 800)),
    "cream": ((700, 1600), (2.0, 4.0), (2.5, 20.0), (0.6, 1.0), (12, 40), (30, 60)),
    "bread": ((900, 1200), (7, 13), (38, 52), (0.03, 0.15), (1.5, 9.0), (300, 550)),
    "biscuit": ((1700, 2150), (5, 9), (55, 72), (0.2, 0.45), (12, 28), (150, 450)),
    "cake": ((1350, 1900), (3.5, 7.0), (35, 60), (0.4, 0.7), (12, 30), (120, 400)),
    "cereal": ((1450, 1750), (6, 14), (55, 80), (0.02, 0.35), (1.5, 12), (5, 700)),
    "grain": ((1400, 1560), (6, 13), (68, 80), (0.0, 0.05), (0.5, 3.5), (0, 25)),
    "beans": ((300, 500), (4.5, 8.0), (10, 18), (0.2, 0.5), (0.2, 1.5), (250, 550)),
    "sauce": ((180, 2900), (0.5, 2.5), (5, 45), (0.5, 0.95), (0.1, 75.0), (500, 2500)),
    "spice": ((600, 1500), (5, 15), (20, 60), (0.02, 0.2), (1, 15), (50, 38000)),
    "drink": ((0, 20), (0.0, 0.5), (0.0, 1.0), (0.0, 1.0), (0.0, 0.2), (0, 10)),
    "sugar": ((1200, 1700), (0.0, 4.0), (70, 100), (0.6, 1.0), (0.0, 1.0), (0, 120)),
    "spread": ((1100, 2650), (0.5, 27), (10, 60), (0.05, 0.9), (0.1, 52), (5, 4500)),
    "soup": ((1000, 1500), (2, 14), (40, 70), (0.02, 0.2), (1, 14), (2000, 18000)),
    "chips": ((1900, 2250), (5, 8), (48, 60), (0.01, 0.08), (24, 36), (450, 900)),
    "icecream": ((420, 1250), (1.5, 5.0), (20, 32), (0.7, 0.95), (0.5, 18), (40, 100)),
    "ready": ((380, 900), (5, 14), (6, 22), (0.05, 0.3), (2, 12), (250, 600)),
    "softdrink": ((0, 200), (0.0, 0.0), (0.0, 11.5), (0.9, 1.0), (0.0, 0.0), (5, 40)),
    "juice": ((120, 230), (0.1, 0.7), (7, 13), (0.85, 1.0), (0.0, 0.3), (1, 15)),
    "water": ((0, 40), (0.0, 0.0), (0.0, 2.4), (0.9, 1.0), (0.0, 0.0), (0, 25)),
    "drinkmix": ((1500, 1800), (4, 12), (65, 82), (0.4, 0.85), (2, 10), (100, 400)),
    "chocolate": ((2050, 2400), (4, 9), (45, 60), (0.75, 0.98), (25, 42), (40, 250)),
    "sweets": ((1300, 1750), (0.0, 7.0), (65, 95), (0.5, 0.9), (0.0, 10.0), (10, 150)),
    "nuts": ((2300, 2800), (8, 26), (4, 30), (0.1, 0.5), (44, 76), (5, 650)),
    "babyfood": ((200, 1900), (1, 15), (8, 70), (0.1, 0.6), (0.2, 10), (5, 200)),
    "dip": ((450, 1400), (1.5, 8.0), (3, 15), (0.1, 0.6), (5, 35), (300, 1400)),
    "pet": ((1300, 1700), (18, 32), (25, 45), (0.0, 0.05), (8, 20), (200, 600)),
}

MULTIBUY_TEXTS = (
    "Buy 2 save R10", "Buy 2 save R15", "Buy 3 save R20", "Buy 2 for R50", "Buy 3 for R100", "Any 2 for R60",
    "Any 3 for R99", "Buy 2 get 1 free", "Mix & Match: any 3 for R120", "Buy 4 save R25",
)
BADGES = ("New", "Organic", "Vegan", "Vegetarian", "Bestseller", "Locally Sourced", "Gluten-Free",
          "Halaal", "Kosher", "Low GI", "Free Range", "Limited Edition")
ORIGINS = ("South Africa",) * 12 + ("Zimbabwe", "Namibia", "Kenya", "Egypt", "Spain", "Peru", "Botswana",
                                    "Eswatini", "New Zealand", "Argentina")

# How often each category shows up, roughly like a grocer's online range (food first).
CATEGORY_WEIGHTS = {
    FV: 10, MEAT: 9, DAIRY: 9, BAKERY: 6, PANTRY: 20, FROZEN: 7, BEV: 9, SNACKS: 9, HOUSE: 6, BABY: 3, HB: 6,
    PETS: 3, DELI: 7,
}
# fmt: on


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------

_SIZE_RE = re.compile(r"^(?:(\d+) x )?(\d+(?:\.\d+)?) ?(kg|g|ml|l|pk|m)$")
_SPACES = re.compile(r"\s+")


@functools.lru_cache(maxsize=4096)
def parse_size(size: str) -> tuple[int, str]:
    """``"6 x 330 ml"`` -> ``(1980, "ml")``, ``"1.5 kg"`` -> ``(1500, "g")``, ``"18 pk"`` -> ``(18, "each")``.

    Amounts are whole grams, millilitres, metres or items, so unit prices need no floats.
    """
    m = _SIZE_RE.match(size)
    if not m:
        return 1, "each"  # "each", clothing-style sizes ("S", "M", ...)
    packs = int(m.group(1) or 1)
    number, unit = m.group(2), m.group(3)
    if "." in number:
        whole, frac = number.split(".")
        milli = int(whole) * 1000 + int(frac.ljust(3, "0")[:3])  # thousandths, exactly
    else:
        milli = int(number) * 1000
    if unit in ("kg", "l"):
        qty, base = milli, ("g" if unit == "kg" else "ml")
    elif unit in ("g", "ml"):
        qty, base = milli // 1000, unit
    elif unit == "m":
        qty, base = milli // 1000, "m"
    else:  # pk
        qty, base = milli // 1000, "each"
    return max(1, packs * qty), base


def ean13_check_digit(first12: str) -> int:
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first12))
    return (10 - total % 10) % 10


def format_rand(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _affine(rng: random.Random, modulus: int) -> tuple[int, int]:
    """A random bijection ``k -> (a*k + b) % modulus`` on [0, modulus), modulus a power of ten."""
    a = rng.randrange(modulus // 10, modulus) | 1
    if a % 5 == 0:
        a += 2  # odd and not a multiple of 5: coprime to 10^n
    return a, rng.randrange(modulus)


class _IdMint:
    """Unique Woolworths-like ids: 13-digit EANs ``600xxxxxxxxxC`` and 8-digit codes ``2xxxxxxx``.

    Each kind is an affine permutation of its own counter, so ids never repeat (10^9 EANs, 10^7 short
    codes) and the two kinds never collide (different lengths). Barcodes for short-coded items come
    from a third, disjoint EAN space (``601...``).
    """

    def __init__(self, rng: random.Random) -> None:
        self._ean = _affine(rng, 10**9)
        self._short = _affine(rng, 10**7)
        self._barcode = _affine(rng, 10**9)
        self._n_ean = self._n_short = self._n_barcode = 0

    @staticmethod
    def _ean13(prefix: str, perm: tuple[int, int], k: int) -> str:
        body = f"{prefix}{(perm[0] * k + perm[1]) % 10**9:09d}"
        return body + str(ean13_check_digit(body))

    def ean(self) -> str:
        k, self._n_ean = self._n_ean, self._n_ean + 1
        return self._ean13("600", self._ean, k)

    def short(self) -> str:
        k, self._n_short = self._n_short, self._n_short + 1
        a, b = self._short
        return f"2{(a * k + b) % 10**7:07d}"

    def barcode(self) -> str:
        k, self._n_barcode = self._n_barcode, self._n_barcode + 1
        return self._ean13("601", self._barcode, k)


class _Combo(NamedTuple):
    family: Family
    brand: str
    variant: str
    name: str
    size: str
    title: str
    qty: int
    unit: str
    ref_qty: int
    ref_price: float


def _title(family: Family, brand: str, variant: str, name: str, size: str) -> str:
    head = family.fmt.format(b=brand, v=variant, n=name)
    tail = "" if size == "each" else size
    return _SPACES.sub(" ", f"{head} {tail}").strip()


def _name_spec(raw_name: str, family: Family) -> tuple[str, tuple[str, ...], float]:
    """Split a vocabulary name into (name, sizes, reference price).

    ``"Syrup@ml"`` keeps the family's ml sizes (``g``, ``ml``, ``m``, ``pk`` = counted items; ``g+pk`` for
    both); ``"Dog Bed@S;M;L"`` lists its own sizes; ``"...~24.99"`` sets the price of its first size
    (default: the family's reference price). Without ``@`` a name comes in every family size.
    """
    rest, _, price = raw_name.partition("~")
    name, _, hint = rest.partition("@")
    ref_price = float(price) if price else family.ref_price
    if not hint:
        return name, family.sizes, ref_price
    units = ["each" if u == "pk" else u for u in hint.split("+")]
    if all(u in ("g", "ml", "each", "m") for u in units) and "each" not in hint.split("+"):
        sizes = tuple(s for s in family.sizes if parse_size(s)[1] in units)
        if not sizes:
            raise ValueError(f"no {hint} size for {raw_name!r}")
        return name, sizes, ref_price
    return name, tuple(hint.split(";")), ref_price


class _NameSpec(NamedTuple):
    name: str
    brands: tuple[str, ...]
    sizes: tuple[str, ...]
    ref_qty: dict[str, int]  # unit -> quantity of the name's first size in that unit
    ref_price: float  # price of that first size


def name_specs(family: Family) -> list[_NameSpec]:
    """The family's names with their brands, sizes and price reference.

    The reference is the name's first size in the same unit: its price is the reference price and other
    sizes scale from it.
    """
    specs = []
    for raw_name in family.names:
        name, sizes, ref_price = _name_spec(raw_name, family)
        if "|" in name:  # "Brand|Name": a product only that brand makes
            brand, _, name = name.partition("|")
            brands: tuple[str, ...] = (brand,)
        else:
            brands = family.brands
        ref_qty: dict[str, int] = {}
        for size in sizes:
            qty, unit = parse_size(size)
            ref_qty.setdefault(unit, qty)
        specs.append(_NameSpec(name, brands, sizes, ref_qty, ref_price))
    return specs


def family_combos(family: Family) -> list[tuple[str, str, str, str, int, float]]:
    """Every (brand, variant, name, size, reference qty, reference price) of one family, in deck order."""
    deck = _FamilyDeck(family)
    out = []
    for idx in range(deck.total):
        c = deck.combo(idx)
        out.append((c.brand, c.variant, c.name, c.size, c.ref_qty, c.ref_price))
    return out


class _FamilyDeck:
    """Deals a family's (brand, variant, name, size) combos in a seeded random order, without building them
    all: titles repeat only after every combo of the family was dealt once."""

    def __init__(self, family: Family) -> None:
        self.family = family
        self.specs = name_specs(family)
        self.starts: list[int] = []
        total = 0
        for spec in self.specs:
            self.starts.append(total)
            total += len(spec.brands) * len(family.variants) * len(spec.sizes)
        self.total = total
        self.seen: set[int] = set()
        self.rest: list[int] = []  # the shuffled remainder, once half of a pass was dealt
        self.cache: dict[int, _Combo] = {}

    def deal(self, rng: random.Random) -> _Combo:
        if not self.rest and len(self.seen) * 2 >= self.total:
            self.rest = [i for i in range(self.total) if i not in self.seen]
            rng.shuffle(self.rest)
            self.seen = set()  # the next pass starts once the remainder is dealt
        if self.rest:
            return self.combo(self.rest.pop())
        while True:  # less than half dealt: draw until unseen (fewer than 2 tries on average)
            idx = rng.randrange(self.total)
            if idx not in self.seen:
                self.seen.add(idx)
                return self.combo(idx)

    def combo(self, idx: int) -> _Combo:
        combo = self.cache.get(idx)
        if combo is not None:
            return combo
        fam = self.family
        pos = bisect.bisect_right(self.starts, idx) - 1
        spec = self.specs[pos]
        r = idx - self.starts[pos]
        n_sizes, n_variants = len(spec.sizes), len(fam.variants)
        brand = spec.brands[r // (n_variants * n_sizes)]
        variant = fam.variants[(r // n_sizes) % n_variants]
        size = spec.sizes[r % n_sizes]
        qty, unit = parse_size(size)
        combo = self.cache[idx] = _Combo(
            fam, brand, variant, spec.name, size, _title(fam, brand, variant, spec.name, size),
            qty, unit, spec.ref_qty[unit], spec.ref_price,
        )  # fmt: skip
        return combo


def _family_cum_weights(decks: Sequence[_FamilyDeck]) -> list[float]:
    """Category weight split over its families in proportion to sqrt(number of combos)."""
    sizes = [math.sqrt(deck.total) for deck in decks]
    per_category: dict[str, float] = {}
    for fam, size in zip(FAMILIES, sizes, strict=True):
        per_category[fam.category] = per_category.get(fam.category, 0.0) + size
    cum, total = [], 0.0
    for fam, size in zip(FAMILIES, sizes, strict=True):
        total += CATEGORY_WEIGHTS[fam.category] * size / per_category[fam.category]
        cum.append(total)
    return cum


def _price_cents(rng: random.Random, combo: _Combo, brand_factor: float) -> int:
    ratio = combo.qty / combo.ref_qty
    # bigger packs cost less per unit: 0.8r + 0.2*sqrt(r) (1 at r=1); only IEEE-exact operations
    size_factor = 0.8 * ratio + 0.2 * math.sqrt(ratio)
    raw = combo.ref_price * size_factor * brand_factor * (0.82 + 0.36 * rng.random())
    rands = max(5, int(raw + 0.5))
    ending = rng.random()
    if ending < 0.58:
        return rands * 100 - 1  # R34.99
    if ending < 0.78:
        return rands * 100 - 5  # R34.95
    if ending < 0.90:
        return rands * 100 - 51  # R33.49
    return rands * 100  # R34.00


def _unit_price(cents: int, qty: int, unit: str) -> str:
    if unit in ("g", "ml"):
        per, label = (100, f"100{unit}") if qty < 1000 else (1000, "kg" if unit == "g" else "l")
    elif unit == "m":
        per, label = 1, "m"
    else:
        per, label = 1, "each"
    unit_cents = (2 * cents * per + qty) // (2 * qty)  # rounded half up, integers only
    return f"R{format_rand(max(1, unit_cents))}/{label}"


def _nutrition(rng: random.Random, profile: str, unit: str) -> dict[str, Any]:
    energy, protein, carbs, sugar_share, fat, sodium = NUTRITION_PROFILES[profile]
    carb_g = round(rng.uniform(*carbs), 1)
    fat_g = round(rng.uniform(*fat), 1)
    return {
        "per": "100 ml" if unit == "ml" else "100 g",
        "energy_kj": int(rng.uniform(*energy)),
        "protein_g": round(rng.uniform(*protein), 1),
        "carbohydrate_g": carb_g,
        "total_sugar_g": round(carb_g * rng.uniform(*sugar_share), 1),
        "fat_g": {"total": fat_g, "saturated": round(fat_g * rng.uniform(0.1, 0.6), 1)},
        "sodium_mg": int(rng.uniform(*sodium)),
    }


def _promo(rng: random.Random, cents: int) -> dict[str, Any]:
    r = rng.random()
    if r < 0.5:
        return {"type": "multibuy", "text": rng.choice(MULTIBUY_TEXTS)}
    if r < 0.8:
        pct = rng.choice((10, 15, 20, 25, 30))
        return {"type": "wrewards", "text": f"WRewards: save {pct}%", "discount_percent": pct}
    was = cents + rng.choice((500, 1000, 1500, 2000, 3000))
    return {"type": "price_cut", "text": f"Was R{format_rand(was)}", "was_price": float(format_rand(was))}


# --------------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------------


def iter_items(count: int, seed: int = DEFAULT_SEED) -> Iterator[dict[str, Any]]:
    """Yield ``count`` catalog items, deterministically for ``seed``."""
    if count < 0:
        raise ValueError("count must be >= 0")
    rng = random.Random(seed)  # noqa: S311 - sample data, not security
    ids = _IdMint(rng)
    decks = [_FamilyDeck(fam) for fam in FAMILIES]
    brand_factor: dict[str, float] = {"": 1.0, W: 1.0}
    for deck in decks:  # fixed order -> deterministic
        for spec in deck.specs:
            for brand in spec.brands:
                if brand not in brand_factor:
                    brand_factor[brand] = round(0.75 + 0.5 * rng.random(), 3)
    cum_weights = _family_cum_weights(decks)
    total_weight = cum_weights[-1]
    last = len(decks) - 1

    for _ in range(count):
        deck = decks[min(last, bisect.bisect_right(cum_weights, rng.random() * total_weight))]
        combo = deck.deal(rng)
        fam = combo.family
        is_ean = rng.random() < EAN_ID_RATE
        product_id = ids.ean() if is_ean else ids.short()
        cents = _price_cents(rng, combo, brand_factor[combo.brand])
        title = combo.title

        price: Any
        if rng.random() < STRING_PRICE_RATE:
            price = format_rand(cents)  # "34.99"
        elif cents % 100 == 0:
            price = cents // 100  # 35
        else:
            price = cents / 100  # 34.99 (shortest repr round-trips to exactly two decimals)

        item: dict[str, Any] = {"product_id": product_id}
        # The retailer is the file's (in its header, and the importer's default); a catalog reference only
        # appears where the site keeps one apart from the product id (a pack or variant SKU).
        if rng.random() < CATALOG_REF_RATE:
            item["catalog_ref_id"] = ids.short()
        item["title"] = title
        if combo.brand:
            item["brand"] = combo.brand
        item["price"] = price
        # The site's short product and image addresses (the slugged forms only repeat the title).
        if rng.random() >= 0.005:
            item["url"] = f"{SITE}/prod/_/A-{product_id}"
        if rng.random() >= 0.015:
            item["image_url"] = f"{IMAGE_HOST}/{product_id}.jpg"
        if rng.random() >= 0.007:
            item["category"] = fam.category
        if rng.random() < UNAVAILABLE_RATE:  # in stock unless marked (the importer's default)
            item["available"] = False
        if combo.size == "each":  # any other size already ends the title
            item["size"] = combo.size
        if rng.random() < UNIT_PRICE_RATE:
            item["unit_price"] = _unit_price(cents, combo.qty, combo.unit)
        r = rng.random()
        if r < 0.14:
            item["promo"] = _promo(rng, cents)
        elif r < 0.2:
            item["promo"] = None
        if fam.nutrition and rng.random() < NUTRITION_RATE:
            item["nutrition"] = _nutrition(rng, fam.nutrition, combo.unit)
        if fam.allergens and rng.random() < 0.5:
            k = 1 + rng.randrange(min(3, len(fam.allergens)))
            item["allergens"] = sorted(rng.sample(fam.allergens, k))
        elif fam.nutrition and rng.random() < 0.2:
            item["allergens"] = []
        if not is_ean and rng.random() < 0.6:  # an EAN product_id already is the barcode
            item["barcode"] = ids.barcode()
        if rng.random() < 0.1:
            item["rating"] = {"average": round(rng.uniform(2.8, 5.0), 1), "count": rng.randrange(1, 900)}
        if rng.random() < 0.05:
            item["badges"] = [rng.choice(BADGES)]
        if fam.origin and rng.random() < 0.3:
            item["country_of_origin"] = rng.choice(ORIGINS)
        yield item


def _scraped_at(seed: int) -> str:
    base = datetime(2025, 3, 1, 4, 0, 0, tzinfo=UTC)
    offset = random.Random(f"scraped-at:{seed}").randrange(60 * 86400)  # noqa: S311
    return (base + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_catalog(out: IO[str], count: int, seed: int = DEFAULT_SEED, fmt: str = "object") -> int:
    """Stream the catalog as JSON text to ``out``; returns the number of items written."""
    if fmt not in ("object", "list"):
        raise ValueError("fmt must be 'object' or 'list'")
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
    if fmt == "object":
        header = {
            "source": "woolworths-scraper",
            "scraped_at": _scraped_at(seed),
            "retailer": RETAILER,
            "currency": "ZAR",
            "item_count": count,
        }
        out.write(dumps(header)[:-1] + ',"items":[')
    else:
        out.write("[")
    n = 0
    buf: list[str] = []
    for item in iter_items(count, seed):
        buf.append(("\n" if n == 0 else ",\n") + dumps(item))
        n += 1
        if len(buf) >= 512:
            out.write("".join(buf))
            buf.clear()
    out.write("".join(buf))
    out.write("\n]}\n" if fmt == "object" else "\n]\n")
    return n


def generate_file(path: str, count: int, seed: int = DEFAULT_SEED, fmt: str = "object") -> int:
    """Write the catalog to ``path`` atomically (temp file + rename); returns the size in bytes."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".sample-catalog-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n", buffering=1 << 20) as fh:
            write_catalog(fh, count, seed, fmt)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return os.path.getsize(path)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Generate a deterministic Woolworths-style South African grocery catalog.json.",
    )
    parser.add_argument(
        "--count", type=int, default=DEFAULT_COUNT, help=f"number of items (default {DEFAULT_COUNT})"
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})"
    )
    parser.add_argument(
        "--out", default=DEFAULT_OUT, help=f"output path, '-' for stdout (default {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--format",
        choices=("object", "list"),
        default="object",
        help="'object': {source, scraped_at, items: [...]} (default); 'list': a bare array",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.count <= MAX_COUNT:
        parser.error(f"--count must be between 0 and {MAX_COUNT}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    started = time.perf_counter()
    if args.out == "-":
        with open(
            sys.stdout.fileno(), "w", encoding="utf-8", newline="\n", closefd=False, buffering=1 << 20
        ) as out:
            write_catalog(out, args.count, args.seed, args.format)
        return 0
    size = generate_file(args.out, args.count, args.seed, args.format)
    elapsed = time.perf_counter() - started
    print(f"wrote {args.count} items ({size / 1e6:.1f} MB) to {args.out} in {elapsed:.2f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
