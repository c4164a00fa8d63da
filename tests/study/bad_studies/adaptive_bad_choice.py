# expect: 'cnn_activation'
from ablate import Study, choice, uniform, loguniform, intrange
study = Study(name="s", factors=dict(cnn_activation=choice("relu", "swish")), design="random", n_trials=3)
