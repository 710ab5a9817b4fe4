"""Message passing in chain models: HMMs and linear-Gaussian state-space models.

The forward pass of inference (the forward algorithm, the Kalman filter) is one
`diffsim.rollout`; its log-likelihood's gradient, taken by reverse-mode autodiff, is the
backward (smoothing) pass: HMM marginals are d log Z / d log-potentials, pairwise marginals
d log Z / d log A_t, the Viterbi path the gradient of the max-product pass, and Kalman
smoother means come from the gradient with respect to an additive input. The explicit
forward-backward, RTS and parallel (associative-scan) versions are here too, with EM and
gradient-ascent learning.
"""

from ._hmm import (
    HMMPosterior as HMMPosterior,
    hmm_filter as hmm_filter,
    hmm_log_likelihood as hmm_log_likelihood,
    hmm_max_score as hmm_max_score,
    hmm_posterior_by_grad as hmm_posterior_by_grad,
    hmm_posterior_sample as hmm_posterior_sample,
    hmm_sample as hmm_sample,
    hmm_smoother as hmm_smoother,
    hmm_viterbi as hmm_viterbi,
    hmm_viterbi_by_grad as hmm_viterbi_by_grad,
    pad_sequences as pad_sequences,
    parallel_hmm_smoother as parallel_hmm_smoother,
)
from ._learning import (
    GaussianHMM as GaussianHMM,
    LGSSMParams as LGSSMParams,
    hmm_em as hmm_em,
    lgssm_em as lgssm_em,
)
from ._lgssm import (
    LGSSM as LGSSM,
    KalmanFilterResult as KalmanFilterResult,
    LGSSMPosterior as LGSSMPosterior,
    kalman_filter as kalman_filter,
    kalman_log_likelihood as kalman_log_likelihood,
    lgssm_sample as lgssm_sample,
    parallel_kalman_filter as parallel_kalman_filter,
    parallel_rts_smoother as parallel_rts_smoother,
    rts_smoother as rts_smoother,
    smoothed_means_by_grad as smoothed_means_by_grad,
)
