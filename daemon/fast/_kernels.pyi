"""Types of the C extension ``streamlearn.fast._kernels`` (daemon/fast/_kernels.c).

Each function has the signature of its specification in ``streamlearn.fast.spec``,
``streamlearn.fast.classspec``, ``streamlearn.fast.keyspec``, ``streamlearn.fast.classkeyspec``
or ``streamlearn.fast.remember`` (the C takes its arguments by position only, as any buffer
of the right item type and shape).
"""

from streamlearn.fast.classkeyspec import learn_logistic_keyed as learn_logistic_keyed
from streamlearn.fast.classkeyspec import score_losses as score_losses
from streamlearn.fast.classspec import learn_logistic as learn_logistic
from streamlearn.fast.classspec import learn_softmax as learn_softmax
from streamlearn.fast.keyspec import KeyIndex as KeyIndex
from streamlearn.fast.keyspec import cut_column as cut_column
from streamlearn.fast.keyspec import held_slots as held_slots
from streamlearn.fast.keyspec import learn_rows_keyed as learn_rows_keyed
from streamlearn.fast.remember import score_remember as score_remember
from streamlearn.fast.spec import feed_values as feed_values
from streamlearn.fast.spec import learn_rows as learn_rows
from streamlearn.fast.spec import parse_lines as parse_lines

LABELED: int
UNLABELED: int
DOUBT: int
REJECTED: int
NOTHING: int
N_STATE: int
N_COUNTERS: int
HEADER: int
MAX_ROWS: int
INTERCEPT: int
ABS_SUM: int
STOPPED: int
SEEN_TOTAL: int
LOSS_N: int
LOSS_MEAN: int
N_LOSS_STATE: int
N_KEY_COUNTERS: int
K_FULL: int
N_CURVE: int
C_PENDING: int
C_RIGHT: int
C_SCORED: int
C_CORRECT: int
C_CONFUSION: int
C_POS_BINS: int
C_NEG_BINS: int
N_BINS: int
N_CLASS_KEY_COUNTERS: int
N_POINT: int
DIVERGED: float
