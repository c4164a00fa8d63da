# expect: field 'nesterov' is true but 'momentum' is 0
from ablate import Study
study = Study(name="s", base=dict(optimizer="sgd", momentum=0.0), factors=dict(nesterov=[False, True]))
