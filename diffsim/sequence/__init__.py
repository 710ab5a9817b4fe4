"""Sequences: recurrent networks over DNA, trained by backpropagation through time.

A DNA sequence is the input of a recurrent network whose cell is a diffsim step, run by
`diffsim.rollout`: the error of a wrong prediction flows back along the sequence (full
BPTT, `Truncated(k)`, or `Checkpointed()` for long windows), and the network learns the
signals that mark where exons are spliced. Here: IUPAC one-hot encoding, reverse
complement, windows and ragged batches; RNN / GRU / LSTM cells, bidirectional layers,
sequence-level and per-position heads; baselines (position weight matrix, logistic
regression on k-mers, a small CNN); the credit diagnostic |d loss / d x_{t-d}| against d;
a synthetic branch-point task with a known dependency length; and readers for the UCI
primate splice-junction set and EMBL records of human genes.
"""

from ._baselines import (
    PWM as PWM,
    LogisticRegression as LogisticRegression,
    fit_logistic as fit_logistic,
    kmer_features as kmer_features,
)
from ._cells import (
    AbstractCell as AbstractCell,
    Bidirectional as Bidirectional,
    Conv as Conv,
    GRUCell as GRUCell,
    LSTMCell as LSTMCell,
    Recurrent as Recurrent,
    RNNCell as RNNCell,
    make_cell as make_cell,
)
from ._credit import credit_by_distance as credit_by_distance, decay_rate as decay_rate
from ._data import (
    ACCEPTOR as ACCEPTOR,
    DONOR as DONOR,
    EMBOSS_HUMAN as EMBOSS_HUMAN,
    NEITHER as NEITHER,
    SITE_CLASSES as SITE_CLASSES,
    UCI_CLASSES as UCI_CLASSES,
    EmblRecord as EmblRecord,
    Locus as Locus,
    genomic_loci as genomic_loci,
    load_uci_splice as load_uci_splice,
    parse_location as parse_location,
    read_embl as read_embl,
    splice_sites as splice_sites,
    stratified_folds as stratified_folds,
    uci_splice_path as uci_splice_path,
)
from ._dna import (
    BASES as BASES,
    IUPAC as IUPAC,
    decode as decode,
    one_hot as one_hot,
    pad_batch as pad_batch,
    reverse_complement as reverse_complement,
    windows as windows,
)
from ._metrics import (
    average_precision as average_precision,
    top_k_accuracy as top_k_accuracy,
)
from ._models import (
    PositionClassifier as PositionClassifier,
    SequenceClassifier as SequenceClassifier,
    conv_layers as conv_layers,
    cross_entropy as cross_entropy,
    recurrent_layers as recurrent_layers,
)
from ._synthetic import (
    BRANCH_POINT as BRANCH_POINT,
    DECOY as DECOY,
    branch_point_task as branch_point_task,
)
