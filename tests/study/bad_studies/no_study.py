# expect: defines no Study
from ablate import Study, choice, uniform, loguniform, intrange
x = 1
