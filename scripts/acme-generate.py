#!/usr/bin/env python3
"""acme-generate.py - writes the generated part of the example handbook (examples/acme/docs/
customers, parts, directory): customer account sheets, spare-parts catalogue pages and the
staff directory of the fictional Acme Robotics, about 16,000 facts with a figure each.

Why: a student trained from scratch learns RAFT's skill (find the sentence that answers, copy
its figure) only from many thousands of distinct facts; with a few hundred it memorises them
instead (issue #8: a student that had seen ~1,800 examples quoted facts recalled from training
rather than the ones in its documents). The hand-written handbook has ~430 facts. Names are
made of random syllables, so that there are thousands of them and none can be guessed from the
question: copying from the documents is the only way to the answer. The pages are
deterministic (a fixed seed, no dates from the clock), so rerunning this script rewrites the
committed files byte for byte. Every fact is one sentence that names its subject, so a question
about it is unambiguous across pages.

usage: python3 scripts/acme-generate.py [examples/acme/docs]
"""
import os
import random
import sys

R = random.Random(20251201)

FIRST = """Anna Ben Clara David Elif Felix Greta Hannah Ivan Jana Karl Lena Marek Nina Oskar Paula Quentin
Rosa Stefan Tomasz Ulla Viktor Wiebke Xaver Yara Zofia Agnieszka Bruno Carla Dieter Emma Florian Gabriel
Helga Ines Jonas Katrin Lukas Marta Nils Olga Piotr Ruth Sven Tanja Uwe Vera Wojciech Aylin Bastian Chiara
Dominik Eva Frieda Georg Henrik Ida Jakub Kerstin Lars Mia Noah Ole Pia Rainer Sabine Theo""".split()
LAST = """Albrecht Bauer Becker Brandt Dietrich Engel Fischer Franke Graf Hahn Hartmann Jansen Keller Klein
Koch Kowalski Krause Lang Lehmann Lorenz Maier Meyer Nowak Olsen Peters Richter Roth Schmid Schulz Schwarz
Sommer Stein Vogel Wagner Weber Werner Wolf Zimmermann Novak Dvorak Kaminski Lewandowski Visser Bakker
Dekker Moreau Laurent Rossi Bianchi Ricci Svensson Lindqvist Berg Haugen Virtanen Horvath Szabo""".split()
ONSET = "b br d f g gr h k kl l m n p pr r s st t tr v w z sch".split()
VOWEL = "a e i o u a e i o ei au".split()
CODA = ["", "", "", "n", "r", "l", "s", "m", "nd", "rg", "lt", "k"]
CO_B = """Logistik Pharma Kliniken Foods Automotive Paper Textil Metallbau Versand Handel Chemie Energie
Getraenke Moebel Elektronik Druck Glas Kunststoff Spedition Agrar""".split()
CO_FORM = ["GmbH", "AG", "KG", "SE", "BV", "NV", "SpA", "Srl", "Ltd", "AB", "Oy", "AS"]  # no dots: a sentence ends at one
CITIES = """Hamburg Bremen Hannover Berlin Leipzig Dresden Munich Stuttgart Cologne Frankfurt Nuremberg Vienna
Graz Zurich Basel Rotterdam Utrecht Eindhoven Antwerp Lyon Lille Milan Turin Krakow Wroclaw Poznan Brno
Prague Gothenburg Malmo Aarhus Tampere Boston Chicago Columbus""".split()
MONTHS = "January February March April May June July August September October November December".split()

PART_KINDS = [("drive wheel assembly", 380, 2400, 1.2, 9.5), ("lidar sensor", 900, 4200, 0.4, 1.6),
              ("battery pack", 1400, 6900, 8.0, 38.0), ("charging contact plate", 60, 420, 0.2, 1.1),
              ("safety scanner", 1100, 3800, 0.6, 1.9), ("motor controller board", 240, 1350, 0.2, 0.9),
              ("bumper strip", 40, 260, 0.3, 2.2), ("lifting actuator", 650, 3100, 3.5, 14.0),
              ("caster wheel", 35, 190, 0.4, 2.4), ("emergency stop button", 45, 210, 0.1, 0.4),
              ("wifi module", 120, 640, 0.1, 0.3), ("camera module", 260, 1500, 0.1, 0.6),
              ("gearbox", 520, 2900, 2.1, 11.0), ("brake unit", 310, 1700, 0.8, 4.5),
              ("main computer", 900, 3600, 0.9, 2.8), ("status light bar", 55, 320, 0.2, 0.8)]
FAMILIES = [("AR-250 Courier", "C"), ("AR-400 Tugger", "T"), ("AR-700X Atlas", "A"), ("AR-90 Scout", "S"),
            ("AR-C6 Cobalt", "K"), ("AR-C10 Cobalt Plus", "P"), ("AR-CS2 charging station", "Q")]
DEPTS = ["Sales", "Customer Support", "Field Service", "Engineering", "Manufacturing", "Finance",
         "Human Resources", "Quality", "Product Management", "IT"]
PRODUCTS = ["AR-250 Courier", "AR-400 Tugger", "AR-700X Atlas", "AR-90 Scout", "AR-C6 Cobalt"]
PLANS = ["Basic", "Standard", "Premium"]
N_REGIONS, N_PART_PAGES, N_STAFF_PAGES = 120, 12, 5   # 1,440 customers, 840 parts, 1,200 staff


def stem():
    """A pronounceable made-up name of two or three syllables: Kavero, Brandilo, Teimsun."""
    syl = [R.choice(ONSET) + R.choice(VOWEL) + R.choice(CODA) for _ in range(R.choice([2, 2, 3]))]
    return "".join(syl).capitalize()


def person():
    return "%s %s" % (R.choice(FIRST), R.choice(LAST) if R.random() < 0.3 else stem() + R.choice(["", "er", "mann", "ski", "sen", "ova"]))


def date(y0, y1):
    return "%04d-%02d-%02d" % (R.randint(y0, y1), R.randint(1, 12), R.randint(1, 28))


def unique(make, seen):
    while True:
        v = make()
        if v not in seen:
            seen.add(v)
            return v


def money(lo, hi, cents=True):
    v = R.uniform(lo, hi)
    return "EUR {:,.2f}".format(round(v, 1)) if cents else "EUR {:,}".format(int(v) // 10 * 10)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def customers(root):
    seen = set()
    for region_no in range(N_REGIONS):
        city_pool = R.sample(CITIES, 4)
        lines = ["# Customer accounts, region %d\n" % (region_no + 1),
                 "*Owner: Key Account Management. One section per customer account; figures from the CRM "
                 "export of 2025-11-30.*\n"]
        for _ in range(12):
            name = unique(lambda: "%s %s %s" % (stem(), R.choice(CO_B), R.choice(CO_FORM)), seen)
            city = R.choice(city_pool)
            prod = R.choice(PRODUCTS)
            lines.append("## %s (%s)\n" % (name, city))
            facts = [
                "The annual contract value of %s is %s." % (name, money(40000, 900000, cents=False)),
                "The customer number of %s is %d." % (name, R.randint(100000, 999999)),
                "The first order of %s was placed on %s." % (name, date(2016, 2025)),
                "The installed fleet of %s has %d %s robots." % (name, R.randint(2, 140), prod),
                "The payment term of %s is %d days." % (name, R.choice([14, 21, 30, 45, 60, 90])),
                "The %s service plan of %s runs until %s." % (R.choice(PLANS), name, date(2026, 2030)),
            ]
            R.shuffle(facts)
            lines.append(" ".join(facts[:3]) + "\n\n" + " ".join(facts[3:]) + "\n")
        write(os.path.join(root, "customers", "accounts-region-%02d.md" % (region_no + 1)), "\n".join(lines))


def parts(root):
    seen = set()
    for fam, letter in FAMILIES:
        for page in range(N_PART_PAGES):
            kinds = R.sample(PART_KINDS, 10)
            lines = ["# Spare parts for the %s, catalogue page %d\n" % (fam, page + 1),
                     "*Owner: Service Parts Logistics. Prices from price list PL-2025-07, valid from 2025-07-01 to "
                     "2025-12-31. Lead times are from order to dispatch in Stuttgart.*\n"]
            for kind, plo, phi, wlo, whi in kinds:
                code = unique(lambda: "%s%s-%04d" % (letter, R.choice("BDEFHMRSW"), R.randint(1000, 9999)), seen)
                what = "%s %s" % (kind, code)
                lines.append("## %s %s\n" % (kind[0].upper() + kind[1:], code))
                facts = ["The %s costs %s." % (what, money(plo, phi)),
                         "The %s weighs %.1f kg." % (what, R.uniform(wlo, whi)),
                         "The lead time of the %s is %d working days." % (what, R.randint(2, 45)),
                         "The %s was introduced on %s." % (what, date(2019, 2025))]
                R.shuffle(facts)
                lines.append(" ".join(facts[:2]) + "\n\n" + " ".join(facts[2:]) + "\n")
            write(os.path.join(root, "parts", "%s-page-%d.md" % (fam.split()[0].lower(), page + 1)), "\n".join(lines))


def directory(root):
    seen = set()
    ext_seen = set()
    for dept, page in [(d, p) for d in DEPTS for p in range(N_STAFF_PAGES)]:
        lines = ["# Staff directory: %s, page %d\n" % (dept, page + 1),
                 "*Owner: Human Resources. Extensions are reachable from every office; external callers dial "
                 "+49 711 9870 and the extension.*\n"]
        for _ in range(24):
            name = unique(person, seen)
            ext = unique(lambda: R.randint(20000, 79999), ext_seen)
            facts = ["The phone extension of %s is %d." % (name, ext),
                     "%s joined Acme Robotics on %s." % (name, date(2012, 2025)),
                     "The office of %s is room %d." % (name, R.randint(100, 599))]
            R.shuffle(facts)
            lines.append("## %s\n\n%s\n" % (name, " ".join(facts)))
        slug = dept.lower().replace(" ", "-")
        write(os.path.join(root, "directory", "staff-%s-%d.md" % (slug, page + 1)), "\n".join(lines))


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "examples", "acme", "docs")
    customers(root)
    parts(root)
    directory(root)


if __name__ == "__main__":
    main()
