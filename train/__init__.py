"""Training and evaluation of the service's face classifiers (see ``train --help``)."""
