"""One company's demo catalogue: the projects, stores and people that `flask demo seed`,
the vendor sandbox's `--seed-demo` and docs/examples/WorkBankVisits.csv all use, so a
first run shows one store name per store number, project names in one style
("TYPE - Name", the prefix giving the event type) and windows in working hours.
Plain data only: nothing here imports the app."""
from __future__ import annotations

# (event type, project name): the prefix is what models.event_type_for() reads.
PROJECTS = [
    ("Core", "CORE - Snack Reset"), ("Core", "CORE - Cereal Aisle Reset"),
    ("Core", "CORE - Holiday Endcap Build"), ("Core", "CORE - Pet Food Cut-In"),
    ("Juicer", "JUICER - Production Day"), ("Juicer", "JUICER - Deep Clean"),
    ("Supervisor", "SUPERVISOR - Store Walk"), ("Supervisor", "SUPERVISOR - Team Audit"),
    ("Digital", "DIGITAL - Shelf Tag Refresh"), ("Digital", "DIGITAL - Planogram Photo Audit"),
    ("Freeosk", "FREEOSK - Kiosk Refill"), ("Freeosk", "FREEOSK - Sampling Launch"),
    ("Other", "OTHER - Beverage Cooler Cut-In"), ("Other", "OTHER - Seasonal Display Teardown"),
]

# (store number, store name): each number has exactly one name.
STORES = [(1204, "Springfield Supercenter"), (2317, "Riverside Market"),
          (845, "Oak Park Neighborhood Market"), (3051, "Lakeview Supercenter"),
          (1789, "Maple Grove Market"), (4410, "Cedar Falls Supercenter"),
          (562, "Hillcrest Neighborhood Market"), (2998, "Westfield Supercenter")]

FIRST_NAMES = ["Maria", "James", "Aisha", "Carlos", "Priya", "Tom", "Lena", "Marcus",
               "Sofia", "Daniel", "Keisha", "Ivan", "Grace", "Omar", "Hannah", "Diego"]
LAST_NAMES = ["Lopez", "Carter", "Khan", "Nguyen", "Patel", "Brooks", "Fischer", "Reed",
              "Rossi", "Kim", "Johnson", "Petrov", "Okafor", "Haddad", "Schmidt", "Alvarez"]

# The working day: windows open at WORKDAY_START and close at WORKDAY_END (hours).
WORKDAY_START, WORKDAY_END = 8, 17
