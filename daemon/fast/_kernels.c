/*
 * streamlearn.fast._kernels: the compiled loops of the fast path.
 *
 * Each function here is a line-for-line C rendering of a plain-Python function in
 * streamlearn.fast.spec, its specification:
 *
 *   parse_lines    = spec.parse_lines     (CSV numbers, exact or DOUBT)
 *   learn_rows     = spec.learn_rows      (sgd test-then-train, metrics, window, curve)
 *   learn_logistic = spec.learn_logistic  (logistic test-then-train, River's LogLoss)
 *   learn_softmax  = spec.learn_softmax   (softmax test-then-train, River's CrossEntropy)
 *   feed_values    = spec.feed_values     (River's ADWIN, bit for bit)
 *   learn_rows_keyed = keyspec.learn_rows_keyed (learn_rows, each row in its key's slot)
 *   held_slots     = keyspec.held_slots    (each labeled row's slot, the slots stamped)
 *   cut_column     = keyspec.cut_column    (a CSV column cut out of each line: the key)
 *   learn_logistic_keyed = classkeyspec.learn_logistic_keyed (learn_logistic per key's slot,
 *                    with ClassMetrics, the window and both curves of a ClassLearner)
 *   score_losses   = classkeyspec.score_losses (losses into a running mean and loss curve)
 *   score_remember = remember.score_remember (one record's metrics and rolling window: the
 *                    record path's Learner._score_and_remember, a call a record)
 *
 * The tests run both on the same inputs and compare every output bit (why C rather
 * than a JIT: docs/design.md). The floating-point operations keep Python's order and
 * IEEE double rounding: built with -ffp-contract=off (no fused multiply-add) and
 * without -ffast-math (no reassociation); `pow`, `exp`, `log` and `sqrt` are the C library's,
 * as CPython's are.
 *
 * Arrays arrive through the buffer protocol (numpy arrays, bytes) and are checked for
 * type, shape and bounds before any loop runs (or, where an index comes from the data,
 * as the loop reads it): a wrong call raises, it never writes past an array. Long loops run without the GIL (the Kafka fetcher, the checkpoint
 * writer and the HTTP thread go on meanwhile); the arrays belong to the caller's
 * thread while a call runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* parse_lines, learn_rows: row kinds, state and counter slots, as in spec.py (the state
 * slots follow metrics.FIELDS; tests/test_kernels.py compares them with Python's). */
enum { LABELED = 0, UNLABELED = 1, DOUBT = 2, REJECTED = 3, NOTHING = 4 };
enum { INTERCEPT, MAE_N, MAE_MEAN, MSE_N, MSE_MEAN, VAR_N, VAR_MEAN, VAR_S, RSS, ABS_SUM,
       N_STATE };
enum { LEARNED, SLOT, LENGTH, STRIDE, ROOM, POINTS, STOPPED, N_COUNTERS };
/* metrics.DIVERGED: a prediction beyond it is left to the run loop's divergence guard; a
 * number beyond it (records.TARGET_LIMIT, for a target) is left to the decoder. */
static const double DIVERGED = 1e150;
static const uint64_t MAX_MANTISSA = (uint64_t)1 << 53;
/* Longer numbers go to the decoder (float() reads any length; nobody writes them). */
#define MAX_TOKEN 64
/* The "C" locale for strtod_l: a '.' is the decimal point whatever the process's locale. */
static locale_t c_locale = (locale_t)0;
/* Exact powers of ten (10**22 is the largest a double holds exactly). */
static const double POW10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* feed_values: the state buffer's header slots, as in spec.py. */
enum { DELTA, CLOCK, MAX_BUCKETS, MIN_LENGTH, GRACE, TOTAL, VARIANCE, WIDTH, TICK,
       DETECTIONS, ROWS, DETECTED, SEEN, SEEN_TOTAL };
#define HEADER 16
#define MAX_ROWS 64
static const double I32_MAX = 2147483647.0;
static const double I32_SPAN = 4294967296.0;

/* Below this much work a call keeps the GIL: releasing it lets a waiting thread in,
 * and taking it back may then wait a whole switch interval (5 ms). */
#define NOGIL_WORK 4096

/* -- arguments ------------------------------------------------------------------- */

typedef struct {
    Py_buffer view;
    int held;
} Array;

static void release(Array *arrays, int n)
{
    for (int i = 0; i < n; i++) {
        if (arrays[i].held) {
            PyBuffer_Release(&arrays[i].view);
            arrays[i].held = 0;
        }
    }
}

/* Take a C-contiguous buffer of `ndim` dimensions whose items are `itemsize` bytes of one
 * of the struct `formats` (e.g. "d" for float64). */
static int take(PyObject *obj, Array *array, const char *name, const char *formats,
                Py_ssize_t itemsize, int ndim, int writable)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, &array->view, flags) < 0) {
        return -1;
    }
    array->held = 1;
    const char *format = array->view.format != NULL ? array->view.format : "B";
    if (format[0] == '@' || format[0] == '=' || format[0] == '<') {
        format++; /* native little-endian: the only byte order built for */
    }
    if (array->view.itemsize != itemsize || format[0] == '\0' || format[1] != '\0' ||
        strchr(formats, format[0]) == NULL || array->view.ndim != ndim) {
        PyErr_Format(PyExc_TypeError,
                     "%s: expected a C-contiguous %d-d array of %zd-byte items (%s), "
                     "got %d-d of format '%s'",
                     name, ndim, itemsize, formats, array->view.ndim, array->view.format);
        return -1;
    }
    return 0;
}

static Py_ssize_t len_of(Array *array) { return array->view.shape[0]; }

#define FLOATS "d"
#define INT64S "lq"
#define INT8S "b"
#define BYTES "Bbc"

/* -- parse_lines ----------------------------------------------------------------- */

static Py_ssize_t parse_block(const uint8_t *data, Py_ssize_t size, Py_ssize_t n_fields,
                              double *values, Py_ssize_t columns, int8_t *status,
                              Py_ssize_t rows, int64_t *starts)
{
    const Py_ssize_t last = n_fields - 1;
    Py_ssize_t row = 0;
    Py_ssize_t pos = 0;
    while (pos < size && row < rows) {
        double *out = values + row * columns;
        int kind = LABELED;
        Py_ssize_t field = 0;
        starts[row] = pos;
        for (;;) {
            int c = pos < size ? data[pos] : 10;
            if (field == last &&
                (c == 10 || (c == 13 && pos + 1 < size && data[pos + 1] == 10))) {
                kind = UNLABELED; /* an empty target */
                out[field] = NAN;
                break;
            }
            const int negative = c == 45; /* '-' */
            pos += negative | (c == 43); /* '+'; no branch: signs come at random */
            /* Leading zeros first; more than 17 significant digits may wrap the mantissa,
             * but such a number is not exact here anyway and goes to the decoder. */
            const Py_ssize_t begin = pos;
            while (pos < size && data[pos] == 48) {
                pos++;
            }
            Py_ssize_t first = pos;
            uint64_t mantissa = 0;
            while (pos < size && data[pos] >= 48 && data[pos] <= 57) {
                mantissa = mantissa * 10 + (uint64_t)(data[pos] - 48);
                pos++;
            }
            Py_ssize_t digits = pos - first;
            int seen = pos > begin;
            int64_t exponent = 0;
            if (pos < size && data[pos] == 46) { /* '.' */
                pos++;
                const Py_ssize_t fraction = pos;
                if (digits == 0) { /* 0.000123: zeros after the point are not significant */
                    while (pos < size && data[pos] == 48) {
                        pos++;
                    }
                }
                first = pos;
                while (pos < size && data[pos] >= 48 && data[pos] <= 57) {
                    mantissa = mantissa * 10 + (uint64_t)(data[pos] - 48);
                    pos++;
                }
                digits += pos - first;
                exponent = (int64_t)(fraction - pos);
                seen = seen || pos > fraction;
            }
            int exact = seen && digits <= 17 && mantissa <= MAX_MANTISSA;
            int valid = seen; /* the number float() reads: digits, and an exponent's digits */
            if (pos < size && (data[pos] == 101 || data[pos] == 69)) { /* 'e' or 'E' */
                pos++;
                int exponent_negative = 0;
                if (pos < size && (data[pos] == 45 || data[pos] == 43)) {
                    exponent_negative = data[pos] == 45;
                    pos++;
                }
                int64_t power = 0;
                Py_ssize_t power_digits = 0;
                while (pos < size && data[pos] >= 48 && data[pos] <= 57) {
                    if (power_digits < 9) { /* more than 4 digits is not exact anyway */
                        power = power * 10 + (data[pos] - 48);
                    }
                    power_digits++;
                    pos++;
                }
                exact = exact && power_digits > 0 && power_digits <= 4;
                valid = valid && power_digits > 0;
                exponent += exponent_negative ? -power : power;
            }
            double value;
            if (exact && mantissa == 0) {
                value = 0.0;
            } else if (exact && exponent >= 0 && exponent <= 22) {
                value = (double)mantissa * POW10[exponent];
            } else if (exact && exponent >= -22 && exponent < 0) {
                value = (double)mantissa / POW10[-exponent];
            } else if (valid && pos - begin < MAX_TOKEN && c_locale != (locale_t)0) {
                /* 17 digits (a float's repr), or a far exponent: one multiplication would
                 * round twice. The C library's strtod is correctly rounded, as float() is,
                 * so both give the same double. An overflow (inf) is the decoder's, and so
                 * is a number beyond DIVERGED: as a target it is out of range (the exact
                 * branches above give less than 1e42). */
                char text[MAX_TOKEN];
                memcpy(text, data + begin, (size_t)(pos - begin)); /* after the sign */
                text[pos - begin] = '\0';
                value = strtod_l(text, NULL, c_locale);
                if (!(fabs(value) < DIVERGED)) {
                    kind = DOUBT;
                    break;
                }
            } else {
                kind = DOUBT;
                break;
            }
            /* -value as a flip of the sign bit (-0.0 for a negative zero, as float()
             * gives): a branch here would be mispredicted on every other number of real
             * data. */
            uint64_t bits;
            memcpy(&bits, &value, sizeof bits);
            bits ^= (uint64_t)negative << 63;
            memcpy(&out[field], &bits, sizeof bits);
            c = pos < size ? data[pos] : 10;
            if (c == 44) { /* ',' */
                field++;
                if (field > last) { /* too many fields */
                    kind = DOUBT;
                    break;
                }
                pos++;
                continue;
            }
            if (c == 13 && pos + 1 < size && data[pos + 1] == 10) {
                pos++; /* CRLF: the decoder strips the CR as well */
                c = 10;
            }
            if (c != 10 || field != last) { /* something after the number, or too few */
                kind = DOUBT;
            }
            break;
        }
        while (pos < size && data[pos] != 10) { /* to the end of the line */
            pos++;
        }
        pos++;
        status[row] = (int8_t)kind;
        row++;
    }
    starts[row] = pos < size ? pos : size;
    return row;
}

PyDoc_STRVAR(parse_lines_doc,
             "parse_lines(data, n_fields, values, status, starts) -> int\n\n"
             "streamlearn.fast.spec.parse_lines, compiled: parse whole CSV lines of numbers.");

static PyObject *parse_lines(PyObject *self, PyObject *args)
{
    PyObject *objects[4];
    Py_ssize_t n_fields;
    Array a[4] = {0};
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "OnOOO:parse_lines", &objects[0], &n_fields, &objects[1],
                          &objects[2], &objects[3])) {
        return NULL;
    }
    if (take(objects[0], &a[0], "data", BYTES, 1, 1, 0) < 0 ||
        take(objects[1], &a[1], "values", FLOATS, 8, 2, 1) < 0 ||
        take(objects[2], &a[2], "status", INT8S, 1, 1, 1) < 0 ||
        take(objects[3], &a[3], "starts", INT64S, 8, 1, 1) < 0) {
        goto done;
    }
    const Py_ssize_t rows = len_of(&a[2]);
    if (n_fields < 1 || a[1].view.shape[1] < n_fields || a[1].view.shape[0] < rows ||
        len_of(&a[3]) < rows + 1) {
        PyErr_SetString(PyExc_ValueError,
                        "parse_lines: values must be (rows, >= n_fields), starts rows + 1 long");
        goto done;
    }
    Py_ssize_t read;
    const Py_ssize_t size = len_of(&a[0]);
    if (size >= NOGIL_WORK * 16) {
        Py_BEGIN_ALLOW_THREADS;
        read = parse_block(a[0].view.buf, size, n_fields, a[1].view.buf, a[1].view.shape[1],
                           a[2].view.buf, rows, a[3].view.buf);
        Py_END_ALLOW_THREADS;
    } else {
        read = parse_block(a[0].view.buf, size, n_fields, a[1].view.buf, a[1].view.shape[1],
                           a[2].view.buf, rows, a[3].view.buf);
    }
    result = PyLong_FromSsize_t(read);
done:
    release(a, 4);
    return result;
}

/* -- what the learning kernels share ------------------------------------------------ */

/* Each kernel's loop picks the rows it reads (LABELED, UNLABELED) inline, in its own first
 * lines: moved into an inline helper (skip to the next such row), gcc -O2 kept the loops'
 * scalars in packed registers it unpacked every row, and the sgd and softmax blocks measured
 * 5-11% slower (median of 100-150 blocks of 100,000-200,000 rows). */

/* A linear model's score as River's predict_one sums it: the intercept, then the features in
 * order. */
static inline double linear(double intercept, const double *w, const double *x, Py_ssize_t n)
{
    double z = intercept;
    for (Py_ssize_t j = 0; j < n; j++) {
        z += w[j] * x[j];
    }
    return z;
}

/* The SGD step on the weights: w_j -= step * x_j, in order (the intercept is the caller's). */
static inline void descend(double *w, const double *x, Py_ssize_t n, double step)
{
    for (Py_ssize_t j = 0; j < n; j++) {
        w[j] = w[j] - step * x[j];
    }
}

/* River's stats.Mean.update, the count `n` already incremented: mean + (1 / n) * (value - mean). */
static inline double mean_step(double n, double mean, double value)
{
    return mean + (1.0 / n) * (value - mean);
}

/* A kernel's loop over a block of rows (its argument struct), returning the row it stopped at. */
typedef Py_ssize_t (*BlockLoop)(const void *);

/* Run `loop` on `k`, without the GIL when `work` (multiply-adds) is worth the switch; the row
 * it stopped at, as a Python int. */
static PyObject *run_block(BlockLoop loop, const void *k, Py_ssize_t work)
{
    Py_ssize_t row;
    if (work >= NOGIL_WORK) {
        Py_BEGIN_ALLOW_THREADS;
        row = loop(k);
        Py_END_ALLOW_THREADS;
    } else {
        row = loop(k);
    }
    return PyLong_FromSsize_t(row);
}

/* -- learn_rows ------------------------------------------------------------------ */

typedef struct {
    const double *values;
    Py_ssize_t columns;
    const int8_t *status;
    Py_ssize_t start, stop;
    double *weights;
    Py_ssize_t n_features;
    double lr, two;
    double *state;
    int64_t *counters;
    double *ring_y, *ring_yhat;
    Py_ssize_t window;
    double *yhat_out;
    double *curve_out;
} Learn;

static Py_ssize_t learn_block(const void *arg)
{
    const Learn *k = arg;
    const Py_ssize_t n_features = k->n_features;
    double *const weights = k->weights;
    double *const state = k->state;
    int64_t *const counters = k->counters;
    double *const ring_y = k->ring_y;
    double *const ring_yhat = k->ring_yhat;
    const Py_ssize_t window = k->window;
    double intercept = state[INTERCEPT];
    double mae_n = state[MAE_N];
    double mae_mean = state[MAE_MEAN];
    double mse_n = state[MSE_N];
    double mse_mean = state[MSE_MEAN];
    double var_n = state[VAR_N];
    double var_mean = state[VAR_MEAN];
    double var_s = state[VAR_S];
    double rss = state[RSS];
    double abs_sum = state[ABS_SUM];
    int64_t learned = counters[LEARNED];
    int64_t slot = counters[SLOT];
    int64_t length = counters[LENGTH];
    const int64_t stride = counters[STRIDE];
    const int64_t room = counters[ROOM];
    int64_t points = 0;
    int64_t diverged = 0;
    Py_ssize_t row = k->start;
    while (row < k->stop) {
        const int kind = k->status[row];
        if (kind != LABELED && kind != UNLABELED) {
            row++;
            continue;
        }
        const double *x = k->values + row * k->columns;
        const double yhat = linear(intercept, weights, x, n_features); /* SGDRegressor's */
        k->yhat_out[row] = yhat;
        if (!(-DIVERGED < yhat && yhat < DIVERGED)) { /* NaN, inf or absurd */
            diverged = 1; /* the run loop's divergence guard takes this row over */
            break;
        }
        if (kind == UNLABELED) {
            row++;
            continue;
        }
        const double y = x[n_features];
        /* River's MAE and MSE (stats.Mean of |e| and e ** 2) and R2 (stats.Var of y and
         * the residual sum of squares), formula by formula. */
        mae_n += 1.0;
        mae_mean = mean_step(mae_n, mae_mean, fabs(y - yhat));
        mse_n += 1.0;
        mse_mean = mean_step(mse_n, mse_mean, pow(y - yhat, k->two));
        const double mean_old = var_mean;
        var_n += 1.0;
        var_mean += (1.0 / var_n) * (y - var_mean);
        var_s += 1.0 * (y - mean_old) * (y - var_mean);
        rss += (y - yhat) * (y - yhat) * 1.0;
        /* SGDRegressor's update: theta_j -= alpha * (yhat - y) * x_j, intercept as x_0 = 1. */
        const double step = k->lr * (yhat - y);
        descend(weights, x, n_features, step);
        intercept -= step;
        /* Learner._remember: the ring, the running |error| sum, the curve. */
        if (length == window) {
            abs_sum -= fabs(ring_y[slot] - ring_yhat[slot]);
        } else {
            length++;
        }
        ring_y[slot] = y;
        ring_yhat[slot] = yhat;
        slot++;
        if (slot == window) {
            slot = 0;
        }
        abs_sum += fabs(y - yhat);
        learned++;
        row++;
        if (learned % stride == 0) {
            if (learned % window == 0) { /* re-sum, oldest first (learner.abs_error_sum) */
                abs_sum = 0.0;
                for (Py_ssize_t i = 0; i < window; i++) {
                    const Py_ssize_t at = (slot + i) % window;
                    abs_sum += fabs(ring_y[at] - ring_yhat[at]);
                }
            }
            double *point = k->curve_out + 3 * points;
            point[0] = (double)learned;
            point[1] = abs_sum / (double)length;
            point[2] = mae_mean;
            points++;
            if (points > room) { /* Curve.add thins now: the caller applies it, goes on */
                break;
            }
        }
    }
    state[INTERCEPT] = intercept;
    state[MAE_N] = mae_n;
    state[MAE_MEAN] = mae_mean;
    state[MSE_N] = mse_n;
    state[MSE_MEAN] = mse_mean;
    state[VAR_N] = var_n;
    state[VAR_MEAN] = var_mean;
    state[VAR_S] = var_s;
    state[RSS] = rss;
    state[ABS_SUM] = abs_sum;
    counters[LEARNED] = learned;
    counters[SLOT] = slot;
    counters[LENGTH] = length;
    counters[POINTS] = points;
    counters[STOPPED] = diverged;
    return row;
}

PyDoc_STRVAR(learn_rows_doc,
             "learn_rows(values, status, start, stop, weights, lr, two, state, counters,\n"
             "           ring_y, ring_yhat, yhat_out, curve_out) -> int\n\n"
             "streamlearn.fast.spec.learn_rows, compiled: test then train rows start..stop.");

static PyObject *learn_rows(PyObject *self, PyObject *args)
{
    PyObject *o[9];
    Array a[9] = {0};
    Learn k;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "OOnnOddOOOOOO:learn_rows", &o[0], &o[1], &k.start, &k.stop,
                          &o[2], &k.lr, &k.two, &o[3], &o[4], &o[5], &o[6], &o[7], &o[8])) {
        return NULL;
    }
    if (take(o[0], &a[0], "values", FLOATS, 8, 2, 0) < 0 ||
        take(o[1], &a[1], "status", INT8S, 1, 1, 0) < 0 ||
        take(o[2], &a[2], "weights", FLOATS, 8, 1, 1) < 0 ||
        take(o[3], &a[3], "state", FLOATS, 8, 1, 1) < 0 ||
        take(o[4], &a[4], "counters", INT64S, 8, 1, 1) < 0 ||
        take(o[5], &a[5], "ring_y", FLOATS, 8, 1, 1) < 0 ||
        take(o[6], &a[6], "ring_yhat", FLOATS, 8, 1, 1) < 0 ||
        take(o[7], &a[7], "yhat_out", FLOATS, 8, 1, 1) < 0 ||
        take(o[8], &a[8], "curve_out", FLOATS, 8, 2, 1) < 0) {
        goto done;
    }
    k.values = a[0].view.buf;
    k.columns = a[0].view.shape[1];
    k.status = a[1].view.buf;
    k.weights = a[2].view.buf;
    k.n_features = len_of(&a[2]);
    k.state = a[3].view.buf;
    k.counters = a[4].view.buf;
    k.ring_y = a[5].view.buf;
    k.ring_yhat = a[6].view.buf;
    k.window = len_of(&a[5]);
    k.yhat_out = a[7].view.buf;
    k.curve_out = a[8].view.buf;
    const Py_ssize_t rows = a[0].view.shape[0];
    /* Every learned row adds at most one curve point: stop - start rows of room suffice. */
    if (k.start < 0 || k.stop < k.start || k.stop > rows || len_of(&a[1]) < k.stop ||
        k.columns < k.n_features + 1 || len_of(&a[3]) < N_STATE ||
        len_of(&a[4]) < N_COUNTERS || k.window < 1 || len_of(&a[6]) != k.window ||
        len_of(&a[7]) < k.stop || a[8].view.shape[1] != 3 ||
        a[8].view.shape[0] < k.stop - k.start || k.counters[STRIDE] < 1 ||
        k.counters[SLOT] < 0 || k.counters[SLOT] >= k.window || k.counters[LENGTH] < 0 ||
        k.counters[LENGTH] > k.window) {
        PyErr_SetString(PyExc_ValueError, "learn_rows: arrays or counters out of range");
        goto done;
    }
    result = run_block(learn_block, &k, (k.stop - k.start) * (k.n_features + 1));
done:
    release(a, 9);
    return result;
}

/* -- learn_rows_keyed ----------------------------------------------------------------- */

/* learn_rows_keyed: per-slot counters, why it stopped, as in keyspec.py. */
enum { K_LEARNED, K_SLOT, K_LENGTH, K_STRIDE, K_POINTS, K_PENDING, N_KEY_COUNTERS };
enum { K_DONE, K_DIVERGED, K_OTHER, K_FULL, K_BAD };

typedef struct {
    const double *values;
    Py_ssize_t columns;
    const int8_t *status;
    const int64_t *slots;
    const int64_t *index;
    Py_ssize_t start, stop;
    double *weights;
    Py_ssize_t n_features, n_slots;
    double lr, two;
    double *state;
    int64_t *counters;
    double *ring_y, *ring_yhat;
    Py_ssize_t window;
    double *curve;
    Py_ssize_t max_points;
    double *pend_err;
    int64_t *pend_idx;
    Py_ssize_t pend;
    double *yhat_out;
    int64_t *why;
} KeyedLearn;

/* Curve.add of a point that is due (n a multiple of the stride): append it; past
 * max_points the stride doubles and only the multiples of it stay. */
static void curve_add(double *curve, int64_t *counters, Py_ssize_t max_points, double n,
                      double rolling, double cumulative)
{
    int64_t count = counters[K_POINTS];
    double *point = curve + 3 * count;
    point[0] = n;
    point[1] = rolling;
    point[2] = cumulative;
    count++;
    if (count > max_points) {
        const int64_t stride = counters[K_STRIDE] * 2;
        int64_t kept = 0;
        for (int64_t i = 0; i < count; i++) {
            const double *from = curve + 3 * i;
            if ((int64_t)from[0] % stride == 0) {
                double *to = curve + 3 * kept;
                to[0] = from[0];
                to[1] = from[1];
                to[2] = from[2];
                kept++;
            }
        }
        counters[K_STRIDE] = stride;
        count = kept;
    }
    counters[K_POINTS] = count;
}

/* Rows ahead whose slots are fetched into the cache: the slots are touched at random (one
 * key's state is a few lines in each of several arrays), so a row waits on memory unless its
 * lines were asked for while earlier rows were learned. First the counters, weights and state
 * of the slot KEYED_AHEAD rows ahead; then, half as far ahead (its counters in the cache by
 * then), its ring's next position, its curve's next point and its error buffer's. Only hints:
 * no result depends on them. */
#ifndef KEYED_AHEAD
#define KEYED_AHEAD 16
#endif

static inline void fetch_span(const void *from, size_t bytes)
{
    __builtin_prefetch(from, 1, 3);
    __builtin_prefetch((const char *)from + bytes - 1, 1, 3);
}

/* A load whose value is not used, which the compiler must still make. */
static inline void touch(const void *at)
{
    const uint8_t value = *(volatile const uint8_t *)at;
    __asm__ volatile("" : : "r"(value));
}

static inline void keyed_fetch(const KeyedLearn *k, Py_ssize_t row)
{
    const Py_ssize_t ahead = row + KEYED_AHEAD, near = row + KEYED_AHEAD / 2;
    if (ahead < k->stop) {
        const int64_t s = k->slots[ahead];
        if (s >= 0 && s < k->n_slots) {
            /* Loaded, not prefetched: a prefetch of the counters made no difference, this
             * load takes 29% off the kernel (bench/bench_keyed_kernel.py). A prefetch is only
             * a hint and, it seems, dropped when its page is not in the TLB, as a slot 16
             * rows ahead seldom is; a load is not, and the rows between overlap its wait. */
            touch(k->counters + s * N_KEY_COUNTERS);
            fetch_span(k->weights + s * k->n_features, k->n_features * sizeof(double));
            fetch_span(k->state + s * N_STATE, N_STATE * sizeof(double));
        }
    }
    if (near < k->stop) {
        const int64_t s = k->slots[near];
        if (s >= 0 && s < k->n_slots) {
            const int64_t *c = k->counters + s * N_KEY_COUNTERS;
            const int64_t at = c[K_SLOT], waiting = c[K_PENDING], points = c[K_POINTS];
            if (points >= 0 && points <= k->max_points) {
                fetch_span(k->curve + (s * (k->max_points + 1) + points) * 3, 3 * sizeof(double));
            }
            if (at >= 0 && at < k->window) {
                __builtin_prefetch(k->ring_y + s * k->window + at, 1, 3);
                __builtin_prefetch(k->ring_yhat + s * k->window + at, 1, 3);
            }
            if (waiting >= 0 && waiting < k->pend) {
                __builtin_prefetch(k->pend_err + s * k->pend + waiting, 1, 3);
                __builtin_prefetch(k->pend_idx + s * k->pend + waiting, 1, 3);
            }
        }
    }
}

static Py_ssize_t keyed_block(const void *arg)
{
    const KeyedLearn *k = arg;
    const Py_ssize_t n_features = k->n_features;
    const Py_ssize_t window = k->window;
    Py_ssize_t row = k->start;
    int64_t why = K_DONE;
    while (row < k->stop) {
        if (KEYED_AHEAD > 0) {
            keyed_fetch(k, row);
        }
        const int64_t s = k->slots[row];
        if (k->status[row] != LABELED || s < 0 || s >= k->n_slots) {
            why = K_OTHER; /* the caller's: a record of another kind, or a key with no slot */
            break;
        }
        int64_t *const counters = k->counters + s * N_KEY_COUNTERS;
        /* The slot's counters index its arrays: they must be in range (else the caller's
         * ValueError, the row not learned). Checked here, not over the rows beforehand: a
         * call that stops at a full buffer is made again for the rest of the rows. */
        if (!(counters[K_SLOT] >= 0 && counters[K_SLOT] < window && counters[K_LENGTH] >= 0 &&
              counters[K_LENGTH] <= window && counters[K_STRIDE] >= 1 &&
              counters[K_POINTS] >= 0 && counters[K_POINTS] <= k->max_points &&
              counters[K_PENDING] >= 0 && counters[K_PENDING] <= k->pend)) {
            why = K_BAD;
            break;
        }
        if (k->pend > 0 && counters[K_PENDING] >= k->pend) {
            why = K_FULL; /* the caller hands the key's errors to its drift monitor */
            break;
        }
        double *const weights = k->weights + s * n_features;
        double *const state = k->state + s * N_STATE;
        double *const ring_y = k->ring_y + s * window;
        double *const ring_yhat = k->ring_yhat + s * window;
        const double *x = k->values + row * k->columns;
        const double yhat = linear(state[INTERCEPT], weights, x, n_features);
        k->yhat_out[row] = yhat;
        if (!(-DIVERGED < yhat && yhat < DIVERGED)) {
            why = K_DIVERGED;
            break;
        }
        const double y = x[n_features];
        /* learn_rows' steps, on the slot's own state. */
        state[MAE_N] += 1.0;
        state[MAE_MEAN] = mean_step(state[MAE_N], state[MAE_MEAN], fabs(y - yhat));
        state[MSE_N] += 1.0;
        state[MSE_MEAN] = mean_step(state[MSE_N], state[MSE_MEAN], pow(y - yhat, k->two));
        const double mean_old = state[VAR_MEAN];
        state[VAR_N] += 1.0;
        state[VAR_MEAN] += (1.0 / state[VAR_N]) * (y - state[VAR_MEAN]);
        state[VAR_S] += 1.0 * (y - mean_old) * (y - state[VAR_MEAN]);
        state[RSS] += (y - yhat) * (y - yhat) * 1.0;
        const double step = k->lr * (yhat - y);
        descend(weights, x, n_features, step);
        state[INTERCEPT] -= step;
        int64_t slot = counters[K_SLOT];
        if (counters[K_LENGTH] == window) {
            state[ABS_SUM] -= fabs(ring_y[slot] - ring_yhat[slot]);
        } else {
            counters[K_LENGTH]++;
        }
        ring_y[slot] = y;
        ring_yhat[slot] = yhat;
        slot++;
        if (slot == window) {
            slot = 0;
        }
        counters[K_SLOT] = slot;
        state[ABS_SUM] += fabs(y - yhat);
        const int64_t learned = ++counters[K_LEARNED];
        if (k->pend > 0) {
            const int64_t at = s * k->pend + counters[K_PENDING]++;
            k->pend_err[at] = fabs(y - yhat);
            k->pend_idx[at] = k->index[row];
        }
        row++;
        if (learned % counters[K_STRIDE] == 0) {
            if (learned % window == 0) {
                double sum = 0.0;
                for (Py_ssize_t i = 0; i < window; i++) {
                    const Py_ssize_t at = (slot + i) % window;
                    sum += fabs(ring_y[at] - ring_yhat[at]);
                }
                state[ABS_SUM] = sum;
            }
            curve_add(k->curve + s * 3 * (k->max_points + 1), counters, k->max_points,
                      (double)learned, state[ABS_SUM] / (double)counters[K_LENGTH],
                      state[MAE_MEAN]);
        }
    }
    *k->why = why;
    return row;
}

PyDoc_STRVAR(learn_rows_keyed_doc,
             "learn_rows_keyed(values, status, slots, index, start, stop, weights, lr, two,\n"
             "                 state, counters, ring_y, ring_yhat, curve, pend_err, pend_idx,\n"
             "                 yhat_out, why) -> int\n\n"
             "streamlearn.fast.keyspec.learn_rows_keyed, compiled: each row in its key's slot.");

static PyObject *learn_rows_keyed(PyObject *self, PyObject *args)
{
    PyObject *o[15];
    Array a[15] = {0};
    KeyedLearn k;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "OOOOnnOddOOOOOOOOO:learn_rows_keyed", &o[0], &o[1], &o[2],
                          &o[3], &k.start, &k.stop, &o[4], &k.lr, &k.two, &o[5], &o[6], &o[7],
                          &o[8], &o[9], &o[10], &o[11], &o[12], &o[13])) {
        return NULL;
    }
    if (take(o[0], &a[0], "values", FLOATS, 8, 2, 0) < 0 ||
        take(o[1], &a[1], "status", INT8S, 1, 1, 0) < 0 ||
        take(o[2], &a[2], "slots", INT64S, 8, 1, 0) < 0 ||
        take(o[3], &a[3], "index", INT64S, 8, 1, 0) < 0 ||
        take(o[4], &a[4], "weights", FLOATS, 8, 2, 1) < 0 ||
        take(o[5], &a[5], "state", FLOATS, 8, 2, 1) < 0 ||
        take(o[6], &a[6], "counters", INT64S, 8, 2, 1) < 0 ||
        take(o[7], &a[7], "ring_y", FLOATS, 8, 2, 1) < 0 ||
        take(o[8], &a[8], "ring_yhat", FLOATS, 8, 2, 1) < 0 ||
        take(o[9], &a[9], "curve", FLOATS, 8, 3, 1) < 0 ||
        take(o[10], &a[10], "pend_err", FLOATS, 8, 2, 1) < 0 ||
        take(o[11], &a[11], "pend_idx", INT64S, 8, 2, 1) < 0 ||
        take(o[12], &a[12], "yhat_out", FLOATS, 8, 1, 1) < 0 ||
        take(o[13], &a[13], "why", INT64S, 8, 1, 1) < 0) {
        goto done;
    }
    k.values = a[0].view.buf;
    k.columns = a[0].view.shape[1];
    k.status = a[1].view.buf;
    k.slots = a[2].view.buf;
    k.index = a[3].view.buf;
    k.weights = a[4].view.buf;
    k.n_slots = a[4].view.shape[0];
    k.n_features = a[4].view.shape[1];
    k.state = a[5].view.buf;
    k.counters = a[6].view.buf;
    k.ring_y = a[7].view.buf;
    k.ring_yhat = a[8].view.buf;
    k.window = a[7].view.shape[1];
    k.curve = a[9].view.buf;
    k.max_points = a[9].view.shape[1] - 1;
    k.pend_err = a[10].view.buf;
    k.pend_idx = a[11].view.buf;
    k.pend = a[10].view.shape[1];
    k.yhat_out = a[12].view.buf;
    k.why = a[13].view.buf;
    const Py_ssize_t rows = a[0].view.shape[0];
    const Py_ssize_t n = k.n_slots;
    int ok = k.start >= 0 && k.stop >= k.start && k.stop <= rows && len_of(&a[1]) >= k.stop &&
             len_of(&a[2]) >= k.stop && len_of(&a[3]) >= k.stop &&
             k.columns >= k.n_features + 1 && a[5].view.shape[0] == n &&
             a[5].view.shape[1] == N_STATE && a[6].view.shape[0] == n &&
             a[6].view.shape[1] == N_KEY_COUNTERS && a[7].view.shape[0] == n && k.window >= 1 &&
             a[8].view.shape[0] == n && a[8].view.shape[1] == k.window &&
             a[9].view.shape[0] == n && k.max_points >= 1 && a[9].view.shape[2] == 3 &&
             a[10].view.shape[0] == n && a[11].view.shape[0] == n &&
             a[11].view.shape[1] == k.pend && len_of(&a[12]) >= k.stop && len_of(&a[13]) >= 1;
    if (ok) {
        result = run_block(keyed_block, &k, (k.stop - k.start) * (k.n_features + 1));
    }
    if (!ok || *k.why == K_BAD) {
        Py_CLEAR(result);
        PyErr_SetString(PyExc_ValueError, "learn_rows_keyed: arrays or counters out of range");
    }
done:
    release(a, 14);
    return result;
}

/* -- held_slots ---------------------------------------------------------------------- */

PyDoc_STRVAR(held_slots_doc,
             "held_slots(ids, status, slot_of_id, stamp, clock, held, start, stop) -> int\n\n"
             "streamlearn.fast.keyspec.held_slots, compiled: each labeled row's slot.");

static PyObject *held_slots(PyObject *self, PyObject *args)
{
    PyObject *o[5];
    Array a[5] = {0};
    int64_t clock;
    Py_ssize_t start, stop, missed = 0;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "OOOOLOnn:held_slots", &o[0], &o[1], &o[2], &o[3], &clock,
                          &o[4], &start, &stop)) {
        return NULL;
    }
    if (take(o[0], &a[0], "ids", INT64S, 8, 1, 0) < 0 ||
        take(o[1], &a[1], "status", INT8S, 1, 1, 0) < 0 ||
        take(o[2], &a[2], "slot_of_id", INT64S, 8, 1, 0) < 0 ||
        take(o[3], &a[3], "stamp", INT64S, 8, 1, 1) < 0 ||
        take(o[4], &a[4], "held", INT64S, 8, 1, 1) < 0) {
        goto done;
    }
    if (start < 0 || stop < start || len_of(&a[0]) < stop || len_of(&a[1]) < stop ||
        len_of(&a[4]) < stop) {
        PyErr_SetString(PyExc_ValueError, "held_slots: rows out of range");
        goto done;
    }
    const int64_t *ids = a[0].view.buf, *slot_of_id = a[2].view.buf;
    const int8_t *status = a[1].view.buf;
    int64_t *stamp = a[3].view.buf, *held = a[4].view.buf;
    const Py_ssize_t n_ids = len_of(&a[2]), n_slots = len_of(&a[3]);
    for (Py_ssize_t row = start; row < stop; row++) {
        const int64_t id = ids[row];
        int64_t slot = -1;
        if (status[row] == LABELED && id >= 0) {
            if (id >= n_ids || (slot = slot_of_id[id]) >= n_slots) {
                PyErr_SetString(PyExc_ValueError, "held_slots: a key id or slot out of range");
                goto done;
            }
            if (slot >= 0) {
                stamp[slot] = clock;
            } else {
                missed++;
            }
        }
        held[row] = slot;
    }
    result = PyLong_FromSsize_t(missed);
done:
    release(a, 5);
    return result;
}

/* -- cut_column ---------------------------------------------------------------------- */

PyDoc_STRVAR(cut_column_doc,
             "cut_column(data, column, starts) -> (bytes, list)\n\n"
             "streamlearn.fast.keyspec.cut_column, compiled: each line without its column-th\n"
             "cell, and the cells as text (None where the decoder must judge the line).");

/* A cell the fast path takes as a key's text as it is: printable ASCII, no quote, not blank
 * at either end (key_text strips), at most 256 characters (MAX_KEY_CHARS). */
static int plain_key(const uint8_t *cell, Py_ssize_t size)
{
    if (size < 1 || size > 256 || cell[0] == ' ' || cell[size - 1] == ' ') {
        return 0;
    }
    for (Py_ssize_t i = 0; i < size; i++) {
        if (cell[i] < 0x21 && cell[i] != ' ') {
            return 0;
        }
        if (cell[i] > 0x7e || cell[i] == '"') {
            return 0;
        }
    }
    return 1;
}

/* One line of a block as cut_column sees it: where it ends, where its key cell is, whether
 * the cell is a plain key, and the bytes the line keeps (all of it, or less the cell and one
 * comma beside it). */
typedef struct {
    Py_ssize_t pos, next, cell, cell_end, cut_from, cut_to;
    int plain;
    uint64_t hash; /* the key's, where the caller's `ahead` took it */
} KeyLine;

static void key_line(const uint8_t *data, Py_ssize_t size, Py_ssize_t pos, Py_ssize_t column,
                     KeyLine *line)
{
    /* memchr, not a loop a byte at a time: half of cut_lines' time went to that loop. */
    const uint8_t *newline = memchr(data + pos, '\n', size - pos);
    const Py_ssize_t end = newline != NULL ? newline - data : size;
    const int quoted = memchr(data + pos, '"', end - pos) != NULL;
    Py_ssize_t text_end = end > pos && data[end - 1] == '\r' ? end - 1 : end;
    /* The cell: from after the column-th comma to the next comma or the line's end. */
    Py_ssize_t cell = pos, field = 0;
    while (field < column && cell < text_end) {
        if (data[cell++] == ',') {
            field++;
        }
    }
    Py_ssize_t cell_end = cell;
    while (cell_end < text_end && data[cell_end] != ',') {
        cell_end++;
    }
    line->pos = pos;
    line->next = end < size ? end + 1 : end;
    line->hash = 0;
    line->cell = cell;
    line->cell_end = cell_end;
    line->plain = !quoted && field == column && plain_key(data + cell, cell_end - cell);
    /* The line less the cell and one comma beside it. */
    line->cut_from = line->plain ? cell : line->next;
    line->cut_to = line->plain ? cell_end : line->next;
    if (line->plain && cell_end < text_end) {
        line->cut_to++; /* its comma after */
    } else if (line->plain && cell > pos) {
        line->cut_from--; /* the last cell: the comma before */
    }
}

/* The block's lines as kept (key_line) into `to`; their starts into `starts`, and `got(row,
 * line)` for each line, which returns < 0 on an error. `ahead` (if any) sees each line
 * CUT_AHEAD lines before `got` does (to fetch what `got` will read into the cache). The
 * bytes written, or -1. */
typedef int (*KeyGot)(void *, Py_ssize_t, const uint8_t *, const KeyLine *);
typedef void (*KeyAhead)(void *, const uint8_t *, KeyLine *);
#define CUT_AHEAD 8

static Py_ssize_t cut_lines(const uint8_t *data, Py_ssize_t size, Py_ssize_t column,
                            int64_t *starts, Py_ssize_t rows, uint8_t *to, KeyGot got,
                            KeyAhead ahead, void *arg)
{
    KeyLine lines[CUT_AHEAD];
    Py_ssize_t written = 0, pos = 0, row = 0, done = 0;
    for (;; row++) {
        const int more = row < rows && pos < size;
        /* The oldest lines waiting: the one whose place this line takes (all at the end). */
        for (; done < row && (done + CUT_AHEAD <= row || !more); done++) {
            const KeyLine *line = lines + done % CUT_AHEAD;
            if (got(arg, done, data, line) < 0) {
                return -1;
            }
            memcpy(to + written, data + line->pos, line->cut_from - line->pos);
            written += line->cut_from - line->pos;
            memcpy(to + written, data + line->cut_to, line->next - line->cut_to);
            written += line->next - line->cut_to;
        }
        if (!more) {
            break;
        }
        KeyLine *line = lines + row % CUT_AHEAD;
        starts[row] = pos;
        key_line(data, size, pos, column, line);
        if (ahead != NULL) {
            ahead(arg, data, line);
        }
        pos = line->next;
    }
    for (Py_ssize_t r = row; r < rows; r++) {
        starts[r] = pos;
        if (got(arg, r, data, NULL) < 0) {
            return -1;
        }
    }
    starts[rows] = pos;
    return written;
}

/* cut_column's keys: each row's cell as text, or None. */
static int key_text(void *arg, Py_ssize_t row, const uint8_t *data, const KeyLine *line)
{
    PyObject *key;
    if (line != NULL && line->plain) {
        key = PyUnicode_DecodeASCII((const char *)data + line->cell, line->cell_end - line->cell,
                                    NULL);
        if (key == NULL) {
            return -1;
        }
    } else {
        Py_INCREF(Py_None);
        key = Py_None;
    }
    return PyList_SetItem((PyObject *)arg, row, key); /* the None there released */
}

/* Check a block's arguments: data (bytes) and starts (int64, rows + 1). */
static int take_block(PyObject **o, Array *a, Py_ssize_t column, const char *name)
{
    if (take(o[0], &a[0], "data", BYTES, 1, 1, 0) < 0 ||
        take(o[1], &a[1], "starts", INT64S, 8, 1, 1) < 0) {
        return -1;
    }
    if (column < 0 || len_of(&a[1]) < 1) {
        PyErr_Format(PyExc_ValueError, "%s: column >= 0, starts rows + 1 long", name);
        return -1;
    }
    return 0;
}

static PyObject *cut_column(PyObject *self, PyObject *args)
{
    PyObject *o[2];
    Py_ssize_t column;
    Array a[2] = {0};
    PyObject *result = NULL, *keys = NULL, *out = NULL;
    if (!PyArg_ParseTuple(args, "OnO:cut_column", &o[0], &column, &o[1])) {
        return NULL;
    }
    if (take_block(o, a, column, "cut_column") < 0) {
        goto done;
    }
    const Py_ssize_t size = len_of(&a[0]), rows = len_of(&a[1]) - 1;
    keys = PyList_New(rows);
    out = PyBytes_FromStringAndSize(NULL, size);
    if (keys == NULL || out == NULL) {
        goto done;
    }
    for (Py_ssize_t r = 0; r < rows; r++) { /* the list is whole if a key fails */
        Py_INCREF(Py_None);
        PyList_SET_ITEM(keys, r, Py_None);
    }
    Py_ssize_t written = cut_lines(a[0].view.buf, size, column, a[1].view.buf, rows,
                                   (uint8_t *)PyBytes_AS_STRING(out), key_text, NULL, keys);
    if (written < 0 || _PyBytes_Resize(&out, written) < 0) {
        goto done;
    }
    result = PyTuple_Pack(2, out, keys);
done:
    Py_XDECREF(out);
    Py_XDECREF(keys);
    release(a, 2);
    return result;
}

/* -- KeyIndex ------------------------------------------------------------------------ */

/* keyspec.KeyIndex: each distinct key's bytes an id (0, 1, 2... in order of first sight), in
 * an open-addressing table (linear probing, at most half full). An entry holds the key's hash,
 * id + 1 (0: empty), size and, up to INLINE_KEY bytes, the key itself: a lookup of a short key
 * reads one entry, which is what a row costs (the table is far larger than the cache). Longer
 * keys are compared in `bytes`, where every key is kept, id i at offsets[i]..offsets[i + 1]. */
#define INLINE_KEY 16

typedef struct {
    uint64_t hash;
    int32_t id;
    int32_t size;
    uint8_t key[INLINE_KEY];
} KeyEntry;

typedef struct {
    PyObject_HEAD
    KeyEntry *table;
    Py_ssize_t mask;
    Py_ssize_t *offsets;
    Py_ssize_t count, room;
    uint8_t *bytes;
    Py_ssize_t used, bytes_room;
} KeyIndex;

static uint64_t key_hash(const uint8_t *key, Py_ssize_t size)
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */
    for (Py_ssize_t i = 0; i < size; i++) {
        h = (h ^ key[i]) * 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static void index_free(KeyIndex *ix)
{
    PyMem_Free(ix->table);
    PyMem_Free(ix->offsets);
    PyMem_Free(ix->bytes);
    ix->table = NULL;
    ix->offsets = NULL;
    ix->bytes = NULL;
    ix->count = ix->room = ix->used = ix->bytes_room = 0;
    ix->mask = -1;
}

/* Make the table `slots` long (a power of two), with the entries held. */
static int index_table(KeyIndex *ix, Py_ssize_t slots)
{
    KeyEntry *table = PyMem_Calloc(slots, sizeof(KeyEntry));
    if (table == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i <= ix->mask; i++) {
        const KeyEntry *entry = ix->table + i;
        if (entry->id == 0) {
            continue;
        }
        Py_ssize_t at = (Py_ssize_t)(entry->hash & (uint64_t)(slots - 1));
        while (table[at].id != 0) {
            at = (at + 1) & (slots - 1);
        }
        table[at] = *entry;
    }
    PyMem_Free(ix->table);
    ix->table = table;
    ix->mask = slots - 1;
    return 0;
}

/* Room for one more key of `size` bytes; -1 on an error (memory). */
static int index_room(KeyIndex *ix, Py_ssize_t size)
{
    if (ix->count + 1 >= ix->room) {
        const Py_ssize_t room = ix->room ? 2 * ix->room : 1024;
        Py_ssize_t *offsets = PyMem_Realloc(ix->offsets, (room + 1) * sizeof(Py_ssize_t));
        if (offsets == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        ix->offsets = offsets;
        ix->offsets[0] = 0;
        ix->room = room;
    }
    if (ix->used + size > ix->bytes_room) {
        Py_ssize_t room = ix->bytes_room ? 2 * ix->bytes_room : 16384;
        while (room < ix->used + size) {
            room *= 2;
        }
        uint8_t *bytes = PyMem_Realloc(ix->bytes, room);
        if (bytes == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        ix->bytes = bytes;
        ix->bytes_room = room;
    }
    if (2 * (ix->count + 1) > ix->mask) { /* would be over half full (or no table yet) */
        return index_table(ix, ix->mask > 0 ? 2 * (ix->mask + 1) : 2048);
    }
    return 0;
}

/* The id of `key` (added if new: `*added` set); -1 on an error (memory, or more ids than an
 * entry holds). */
static int64_t index_id(KeyIndex *ix, const uint8_t *key, Py_ssize_t size, uint64_t h,
                        int *added)
{
    if (ix->table == NULL && index_table(ix, 2048) < 0) {
        return -1;
    }
    Py_ssize_t at = (Py_ssize_t)(h & (uint64_t)ix->mask);
    for (;; at = (at + 1) & ix->mask) {
        const KeyEntry *entry = ix->table + at;
        if (entry->id == 0) {
            break;
        }
        if (entry->hash == h && entry->size == size &&
            memcmp(size <= INLINE_KEY ? entry->key : ix->bytes + ix->offsets[entry->id - 1], key,
                   size) == 0) {
            return entry->id - 1;
        }
    }
    if (ix->count >= INT32_MAX - 1 || size > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "KeyIndex: too many keys");
        return -1;
    }
    const Py_ssize_t mask = ix->mask;
    if (index_room(ix, size) < 0) {
        return -1;
    }
    if (ix->mask != mask) { /* a new table: the key's place in it */
        at = (Py_ssize_t)(h & (uint64_t)ix->mask);
        while (ix->table[at].id != 0) {
            at = (at + 1) & ix->mask;
        }
    }
    const int64_t id = ix->count++;
    memcpy(ix->bytes + ix->used, key, size);
    ix->used += size;
    ix->offsets[id + 1] = ix->used;
    KeyEntry *entry = ix->table + at;
    entry->hash = h;
    entry->id = (int32_t)(id + 1);
    entry->size = (int32_t)size;
    memcpy(entry->key, key, size <= INLINE_KEY ? size : 0);
    *added = 1;
    return id;
}

static PyObject *index_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if (!PyArg_ParseTuple(args, ":KeyIndex")) {
        return NULL;
    }
    KeyIndex *ix = (KeyIndex *)type->tp_alloc(type, 0);
    if (ix != NULL) {
        ix->mask = -1;
    }
    return (PyObject *)ix;
}

static void index_dealloc(KeyIndex *ix)
{
    PyTypeObject *type = Py_TYPE(ix);
    index_free(ix);
    type->tp_free((PyObject *)ix);
    Py_DECREF(type);
}

static Py_ssize_t index_len(KeyIndex *ix) { return ix->count; }

static PyObject *index_clear(KeyIndex *ix, PyObject *unused)
{
    index_free(ix);
    Py_RETURN_NONE;
}

static PyObject *index_key_id(KeyIndex *ix, PyObject *arg)
{
    Py_buffer key;
    if (PyObject_GetBuffer(arg, &key, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    int added = 0;
    const int64_t id = index_id(ix, key.buf, key.len, key_hash(key.buf, key.len), &added);
    PyBuffer_Release(&key);
    return id < 0 ? NULL : PyLong_FromLongLong(id);
}

/* KeyIndex.cut's rows: each row's id (-1: no plain key), each new key's text. */
typedef struct {
    KeyIndex *ix;
    int64_t *ids;
    PyObject *new;
} KeyIds;

static int key_id(void *arg, Py_ssize_t row, const uint8_t *data, const KeyLine *line)
{
    KeyIds *k = arg;
    if (line == NULL || !line->plain) {
        k->ids[row] = -1;
        return 0;
    }
    int added = 0;
    const Py_ssize_t size = line->cell_end - line->cell;
    const int64_t id = index_id(k->ix, data + line->cell, size, line->hash, &added);
    if (id < 0) {
        return -1;
    }
    k->ids[row] = id;
    if (added) {
        PyObject *text = PyUnicode_DecodeASCII((const char *)data + line->cell, size, NULL);
        if (text == NULL || PyList_Append(k->new, text) < 0) {
            Py_XDECREF(text);
            return -1;
        }
        Py_DECREF(text);
    }
    return 0;
}

/* A line's key hashed, and its place in the table fetched while the lines before it are cut. */
static void key_ahead(void *arg, const uint8_t *data, KeyLine *line)
{
    const KeyIndex *ix = ((KeyIds *)arg)->ix;
    if (line->plain) {
        line->hash = key_hash(data + line->cell, line->cell_end - line->cell);
        if (ix->table != NULL) {
            __builtin_prefetch(ix->table + (line->hash & (uint64_t)ix->mask), 0, 3);
        }
    }
}

PyDoc_STRVAR(index_cut_doc,
             "cut(data, column, starts, ids) -> (bytes, list)\n\n"
             "streamlearn.fast.keyspec.KeyIndex.cut, compiled: cut_column with each row's key\n"
             "as an id into `ids` (-1: none) and the text of the keys new to the index.");

static PyObject *index_cut(KeyIndex *ix, PyObject *args)
{
    PyObject *o[3];
    Py_ssize_t column;
    Array a[3] = {0};
    KeyIds k = {ix, NULL, NULL};
    PyObject *result = NULL, *out = NULL;
    if (!PyArg_ParseTuple(args, "OnOO:cut", &o[0], &column, &o[1], &o[2])) {
        return NULL;
    }
    if (take_block(o, a, column, "cut") < 0 || take(o[2], &a[2], "ids", INT64S, 8, 1, 1) < 0) {
        goto done;
    }
    const Py_ssize_t size = len_of(&a[0]), rows = len_of(&a[1]) - 1;
    if (len_of(&a[2]) < rows) {
        PyErr_SetString(PyExc_ValueError, "cut: ids at least rows long");
        goto done;
    }
    k.ids = a[2].view.buf;
    k.new = PyList_New(0);
    out = PyBytes_FromStringAndSize(NULL, size);
    if (k.new == NULL || out == NULL) {
        goto done;
    }
    Py_ssize_t written = cut_lines(a[0].view.buf, size, column, a[1].view.buf, rows,
                                   (uint8_t *)PyBytes_AS_STRING(out), key_id, key_ahead, &k);
    if (written < 0 || _PyBytes_Resize(&out, written) < 0) {
        goto done;
    }
    result = PyTuple_Pack(2, out, k.new);
done:
    Py_XDECREF(out);
    Py_XDECREF(k.new);
    release(a, 3);
    return result;
}

static PyMethodDef index_methods[] = {
    {"cut", (PyCFunction)index_cut, METH_VARARGS, index_cut_doc},
    {"id", (PyCFunction)index_key_id, METH_O, "id(key: bytes) -> int: the key's id (added if new)."},
    {"clear", (PyCFunction)index_clear, METH_NOARGS, "clear(): no ids; the next new key is 0."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot index_slots[] = {
    {Py_tp_new, index_new},
    {Py_tp_dealloc, index_dealloc},
    {Py_tp_methods, index_methods},
    {Py_sq_length, index_len},
    {Py_mp_length, index_len},
    {Py_tp_doc, "KeyIndex(): streamlearn.fast.keyspec.KeyIndex, compiled."},
    {0, NULL},
};

static PyType_Spec index_spec = {
    .name = "streamlearn.fast._kernels.KeyIndex",
    .basicsize = sizeof(KeyIndex),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = index_slots,
};

/* -- learn_logistic, learn_softmax --------------------------------------------------- */

/* The classifiers' state: River's Mean of the log loss or cross-entropy (classspec.py). */
enum { LOSS_N, LOSS_MEAN, N_LOSS_STATE };
/* The curve argument: records learned, the stride, the ring's next slot and length, points
 * made, the first slot written since the ring's partial sums were taken. */
enum { CURVE_LEARNED, CURVE_STRIDE, CURVE_NEXT, CURVE_LEN, CURVE_POINTS, CURVE_DIRTY, N_CURVE };
/* River clamps a probability into [EPSILON, 1 - EPSILON] before its logarithm. */
static const double EPSILON = 1e-15;

typedef struct {
    const double *values;
    Py_ssize_t columns;
    const int8_t *status;
    const int64_t *classes; /* softmax only */
    Py_ssize_t start, stop;
    double *weights; /* logistic: d + 1; softmax: classes x (d + 1); the intercept last */
    Py_ssize_t n_classes, n_features;
    double lr;
    double *state;
    double *p_out; /* logistic: rows; softmax: rows x classes */
    double *loss_out;
    double *ring; /* the window's losses, then their partial sums; NULL: no curve */
    Py_ssize_t size;
    int64_t *curve;
    double *points; /* rows of [n, rolling, cumulative] */
} Classify;

/* River's clamp: max(min(p, 1 - EPSILON), EPSILON). */
static double clamp_proba(double p)
{
    const double low = p < 1.0 - EPSILON ? p : 1.0 - EPSILON;
    return low > EPSILON ? low : EPSILON;
}

/* classspec.loss_point: Window.add of the loss, the record counted, and at a multiple of the
 * stride the point [n, sum of the ring slot by slot from slot 0 / its length, running mean];
 * the partial sums kept so a point adds only from the first slot written since the last. */
static void loss_point(const Classify *k, double loss, double loss_mean)
{
    int64_t *curve = k->curve;
    const int64_t slot = curve[CURVE_NEXT];
    k->ring[slot] = loss;
    if (slot < curve[CURVE_DIRTY]) {
        curve[CURVE_DIRTY] = slot;
    }
    curve[CURVE_NEXT] = slot + 1 == k->size ? 0 : slot + 1;
    if (curve[CURVE_LEN] < k->size) {
        curve[CURVE_LEN]++;
    }
    const int64_t learned = ++curve[CURVE_LEARNED];
    if (learned % curve[CURVE_STRIDE] != 0) {
        return;
    }
    const int64_t length = curve[CURVE_LEN];
    const int64_t first = curve[CURVE_DIRTY];
    double *partial = k->ring + k->size;
    double total = first > 0 ? partial[first - 1] : 0.0;
    for (int64_t i = first; i < length; i++) {
        total += k->ring[i];
        partial[i] = total;
    }
    curve[CURVE_DIRTY] = length;
    double *point = k->points + 3 * curve[CURVE_POINTS];
    point[0] = (double)learned;
    point[1] = total / (double)length;
    point[2] = loss_mean;
    curve[CURVE_POINTS]++;
}

static Py_ssize_t logistic_block(const void *arg)
{
    const Classify *k = arg;
    const Py_ssize_t n_features = k->n_features;
    double *const weights = k->weights;
    double intercept = weights[n_features];
    double loss_n = k->state[LOSS_N];
    double loss_mean = k->state[LOSS_MEAN];
    Py_ssize_t row = k->start;
    while (row < k->stop) {
        const int kind = k->status[row];
        if (kind != LABELED && kind != UNLABELED) {
            row++;
            continue;
        }
        const double *x = k->values + row * k->columns;
        const double z = linear(intercept, weights, x, n_features); /* LogisticRegression's */
        if (!(-INFINITY < z && z < INFINITY)) { /* NaN or inf: the record path decides */
            break;
        }
        double p;
        if (z >= 0.0) { /* the sigmoid, without an overflow of exp on either side */
            p = 1.0 / (1.0 + exp(-z));
        } else {
            const double e = exp(z);
            p = e / (1.0 + e);
        }
        k->p_out[row] = p;
        if (kind == UNLABELED) {
            row++;
            continue;
        }
        const double y = x[n_features];
        if (y != 0.0 && y != 1.0) { /* not a code: the caller doubts such rows first */
            break;
        }
        /* River's LogLoss: the probability clamped, then a stats.Mean of -log. */
        const double clamped = clamp_proba(p);
        const double loss = y == 1.0 ? -log(clamped) : -log(1.0 - clamped);
        k->loss_out[row] = loss;
        loss_n += 1.0;
        loss_mean = mean_step(loss_n, loss_mean, loss);
        if (k->curve != NULL) {
            loss_point(k, loss, loss_mean);
        }
        /* The seed's update: theta_j -= alpha * (p - y) * x_j, the intercept as x_0 = 1. */
        const double step = k->lr * (p - y);
        descend(weights, x, n_features, step);
        intercept -= step;
        row++;
    }
    weights[n_features] = intercept;
    k->state[LOSS_N] = loss_n;
    k->state[LOSS_MEAN] = loss_mean;
    return row;
}

static Py_ssize_t softmax_block(const void *arg)
{
    const Classify *k = arg;
    const Py_ssize_t n_classes = k->n_classes;
    const Py_ssize_t n_features = k->n_features;
    const Py_ssize_t stride = n_features + 1;
    double *const weights = k->weights;
    double loss_n = k->state[LOSS_N];
    double loss_mean = k->state[LOSS_MEAN];
    Py_ssize_t row = k->start;
    while (row < k->stop) {
        const int kind = k->status[row];
        if (kind != LABELED && kind != UNLABELED) {
            row++;
            continue;
        }
        const int64_t target = kind == LABELED ? k->classes[row] : 0;
        if (target < 0 || target >= n_classes) { /* a class new to the model */
            break;
        }
        const double *x = k->values + row * k->columns;
        /* SoftmaxRegression.predict_learn_one: per class its intercept, then the features
         * in order; the largest first found; exp(z - largest) summed in class order. */
        double *p = k->p_out + row * n_classes;
        int finite = 1;
        double largest = 0.0;
        for (Py_ssize_t c = 0; c < n_classes; c++) {
            const double *w = weights + c * stride;
            const double z = linear(w[n_features], w, x, n_features);
            if (!(-INFINITY < z && z < INFINITY)) {
                finite = 0;
            }
            if (c == 0 || z > largest) {
                largest = z;
            }
            p[c] = z;
        }
        if (!finite) { /* NaN or inf: the record path decides */
            break;
        }
        double total = 0.0;
        for (Py_ssize_t c = 0; c < n_classes; c++) {
            p[c] = exp(p[c] - largest);
            total += p[c];
        }
        for (Py_ssize_t c = 0; c < n_classes; c++) {
            p[c] = p[c] / total;
        }
        if (kind == UNLABELED) {
            row++;
            continue;
        }
        /* River's CrossEntropy: the true class's probability clamped, a stats.Mean of -log. */
        const double loss = -log(clamp_proba(p[target]));
        k->loss_out[row] = loss;
        loss_n += 1.0;
        loss_mean = mean_step(loss_n, loss_mean, loss);
        if (k->curve != NULL) {
            loss_point(k, loss, loss_mean);
        }
        /* The seed's update per class: W_c -= alpha * (p_c - [y == c]) * x, intercept as 1. */
        for (Py_ssize_t c = 0; c < n_classes; c++) {
            double *w = weights + c * stride;
            const double step = k->lr * (p[c] - (c == target ? 1.0 : 0.0));
            descend(w, x, n_features, step);
            w[n_features] -= step;
        }
        row++;
    }
    k->state[LOSS_N] = loss_n;
    k->state[LOSS_MEAN] = loss_mean;
    return row;
}

/* The optional ring, curve and points of learn_logistic/learn_softmax (all three or none): in
 * range for every point rows start..stop can make. */
static int take_curve(PyObject **o, Array *a, Classify *k, const char *name)
{
    if (o[0] == NULL && o[1] == NULL && o[2] == NULL) {
        return 0;
    }
    if (o[0] == NULL || o[1] == NULL || o[2] == NULL) {
        PyErr_Format(PyExc_TypeError, "%s: ring, curve and points go together", name);
        return -1;
    }
    if (take(o[0], &a[0], "ring", FLOATS, 8, 1, 1) < 0 ||
        take(o[1], &a[1], "curve", INT64S, 8, 1, 1) < 0 ||
        take(o[2], &a[2], "points", FLOATS, 8, 2, 1) < 0) {
        return -1;
    }
    const int64_t *curve = a[1].view.buf;
    const Py_ssize_t size = len_of(&a[0]) / 2;
    if (len_of(&a[1]) < N_CURVE || size < 1 || len_of(&a[0]) != 2 * size || curve[CURVE_STRIDE] < 1 ||
        curve[CURVE_LEARNED] < 0 || curve[CURVE_NEXT] < 0 || curve[CURVE_NEXT] >= size ||
        curve[CURVE_LEN] < 0 || curve[CURVE_LEN] > size || curve[CURVE_POINTS] < 0 ||
        curve[CURVE_DIRTY] < 0 || curve[CURVE_DIRTY] > curve[CURVE_LEN] ||
        a[2].view.shape[1] != 3 ||
        a[2].view.shape[0] - curve[CURVE_POINTS] < (k->stop - k->start) / curve[CURVE_STRIDE] + 1) {
        PyErr_Format(PyExc_ValueError, "%s: arrays out of range", name);
        return -1;
    }
    k->ring = a[0].view.buf;
    k->size = size;
    k->curve = a[1].view.buf;
    k->points = a[2].view.buf;
    return 0;
}

PyDoc_STRVAR(learn_logistic_doc,
             "learn_logistic(values, status, start, stop, weights, lr, state, p_out, loss_out"
             "[, ring, curve, points]) -> int\n\n"
             "streamlearn.fast.classspec.learn_logistic, compiled: the binary logistic prequential "
             "step over rows start..stop.");

static PyObject *learn_logistic(PyObject *self, PyObject *args)
{
    PyObject *o[9] = {0};
    Array a[9] = {0};
    Classify k = {0};
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "OOnnOdOOO|OOO:learn_logistic", &o[0], &o[1], &k.start,
                          &k.stop, &o[2], &k.lr, &o[3], &o[4], &o[5], &o[6], &o[7], &o[8])) {
        return NULL;
    }
    if (take(o[0], &a[0], "values", FLOATS, 8, 2, 0) < 0 ||
        take(o[1], &a[1], "status", INT8S, 1, 1, 0) < 0 ||
        take(o[2], &a[2], "weights", FLOATS, 8, 1, 1) < 0 ||
        take(o[3], &a[3], "state", FLOATS, 8, 1, 1) < 0 ||
        take(o[4], &a[4], "p_out", FLOATS, 8, 1, 1) < 0 ||
        take(o[5], &a[5], "loss_out", FLOATS, 8, 1, 1) < 0) {
        goto done;
    }
    k.values = a[0].view.buf;
    k.columns = a[0].view.shape[1];
    k.status = a[1].view.buf;
    k.weights = a[2].view.buf;
    k.n_features = len_of(&a[2]) - 1;
    k.n_classes = 2;
    k.state = a[3].view.buf;
    k.p_out = a[4].view.buf;
    k.loss_out = a[5].view.buf;
    if (k.start < 0 || k.stop < k.start || k.stop > a[0].view.shape[0] ||
        len_of(&a[1]) < k.stop || k.n_features < 0 || k.columns < k.n_features + 1 ||
        len_of(&a[3]) < N_LOSS_STATE || len_of(&a[4]) < k.stop || len_of(&a[5]) < k.stop) {
        PyErr_SetString(PyExc_ValueError, "learn_logistic: arrays out of range");
        goto done;
    }
    if (take_curve(o + 6, a + 6, &k, "learn_logistic") < 0) {
        goto done;
    }
    result = run_block(logistic_block, &k, (k.stop - k.start) * (k.n_features + 1));
done:
    release(a, 9);
    return result;
}

PyDoc_STRVAR(learn_softmax_doc,
             "learn_softmax(values, status, classes, start, stop, weights, lr, state, p_out, "
             "loss_out[, ring, curve, points]) -> int\n\n"
             "streamlearn.fast.classspec.learn_softmax, compiled: the multiclass softmax "
             "prequential step over rows start..stop.");

static PyObject *learn_softmax(PyObject *self, PyObject *args)
{
    PyObject *o[10] = {0};
    Array a[10] = {0};
    Classify k = {0};
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "OOOnnOdOOO|OOO:learn_softmax", &o[0], &o[1], &o[2], &k.start,
                          &k.stop, &o[3], &k.lr, &o[4], &o[5], &o[6], &o[7], &o[8], &o[9])) {
        return NULL;
    }
    if (take(o[0], &a[0], "values", FLOATS, 8, 2, 0) < 0 ||
        take(o[1], &a[1], "status", INT8S, 1, 1, 0) < 0 ||
        take(o[2], &a[2], "classes", INT64S, 8, 1, 0) < 0 ||
        take(o[3], &a[3], "weights", FLOATS, 8, 2, 1) < 0 ||
        take(o[4], &a[4], "state", FLOATS, 8, 1, 1) < 0 ||
        take(o[5], &a[5], "p_out", FLOATS, 8, 2, 1) < 0 ||
        take(o[6], &a[6], "loss_out", FLOATS, 8, 1, 1) < 0) {
        goto done;
    }
    k.values = a[0].view.buf;
    k.columns = a[0].view.shape[1];
    k.status = a[1].view.buf;
    k.classes = a[2].view.buf;
    k.weights = a[3].view.buf;
    k.n_classes = a[3].view.shape[0];
    k.n_features = a[3].view.shape[1] - 1;
    k.state = a[4].view.buf;
    k.p_out = a[5].view.buf;
    k.loss_out = a[6].view.buf;
    if (k.start < 0 || k.stop < k.start || k.stop > a[0].view.shape[0] ||
        len_of(&a[1]) < k.stop || len_of(&a[2]) < k.stop || k.n_features < 0 ||
        k.columns < k.n_features + 1 || len_of(&a[4]) < N_LOSS_STATE ||
        a[5].view.shape[0] < k.stop || a[5].view.shape[1] != k.n_classes ||
        len_of(&a[6]) < k.stop) {
        PyErr_SetString(PyExc_ValueError, "learn_softmax: arrays out of range");
        goto done;
    }
    if (take_curve(o + 7, a + 7, &k, "learn_softmax") < 0) {
        goto done;
    }
    const Py_ssize_t work = (k.stop - k.start) * (k.n_features + 1) * (k.n_classes + 1);
    result = run_block(softmax_block, &k, work);
done:
    release(a, 10);
    return result;
}

/* -- learn_logistic_keyed, score_losses ------------------------------------------------ */

/* learn_logistic_keyed: a slot's counters after classspec's curve counters, as in
 * classkeyspec.py: errors waiting for the drift monitor, the window's records predicted right,
 * records scored and predicted right, the confusion [y][predicted], the ROC bins of the
 * positives and of the negatives. */
enum { N_BINS = 11 };
enum { C_PENDING = CURVE_DIRTY + 1, C_RIGHT, C_SCORED, C_CORRECT, C_CONFUSION,
       C_POS_BINS = C_CONFUSION + 4, C_NEG_BINS = C_POS_BINS + N_BINS,
       N_CLASS_KEY_COUNTERS = C_NEG_BINS + N_BINS };
/* A point of a slot's curves: records learned, rolling and cumulative accuracy, rolling and
 * cumulative log loss. */
enum { N_POINT = 5 };

typedef struct {
    const double *values;
    Py_ssize_t columns;
    const int8_t *status;
    const int64_t *slots;
    const int64_t *index;
    Py_ssize_t start, stop;
    double *weights; /* slots x (d + 1), the intercept last */
    Py_ssize_t n_features, n_slots;
    double lr;
    double *state;
    int64_t *counters;
    double *ring; /* slots x 2 window: the losses, then their partial sums */
    int8_t *ring_y, *ring_pred;
    double *ring_p;
    Py_ssize_t window;
    double *points; /* slots x (max_points + 1) x N_POINT */
    Py_ssize_t max_points;
    double *pend_err;
    int64_t *pend_idx;
    Py_ssize_t pend;
    double *p_out, *loss_out;
    int64_t *why;
} ClassKeyed;

/* models.logistic.sigmoid: exp only ever of a number <= 0 (NaN takes the second branch). */
static inline double sigmoid(double z)
{
    if (z >= 0.0) {
        return 1.0 / (1.0 + exp(-z));
    }
    const double e = exp(z);
    return e / (1.0 + e);
}

/* bisect_left(classify.metrics.THRESHOLDS, p) of a probability in [0, 1]. */
static inline int64_t roc_bin(double p)
{
    int64_t count = 1;
    for (int i = 1; i < N_BINS - 2; i++) {
        if ((double)i / 9.0 < p) {
            count++;
        }
    }
    return count;
}

/* classkeyspec._point: the slot's ring summed from its first dirty slot, the point added to
 * both curves, thinned as Curve.add thins them. */
static void class_point(const ClassKeyed *k, double *ring, int64_t *c, double *points,
                        int64_t learned, double loss_mean)
{
    const Py_ssize_t size = k->window;
    const int64_t length = c[CURVE_LEN];
    const int64_t first = c[CURVE_DIRTY];
    double total = first > 0 ? ring[size + first - 1] : 0.0; /* sum(): slot by slot from 0 */
    for (int64_t i = first; i < length; i++) {
        total += ring[i];
        ring[size + i] = total;
    }
    c[CURVE_DIRTY] = length;
    int64_t count = c[CURVE_POINTS];
    double *point = points + N_POINT * count;
    point[0] = (double)learned;
    point[1] = (double)c[C_RIGHT] / (double)length;
    point[2] = (double)c[C_CORRECT] / (double)c[C_SCORED];
    point[3] = total / (double)length;
    point[4] = loss_mean;
    count++;
    if (count > k->max_points) {
        const int64_t stride = c[CURVE_STRIDE] * 2;
        int64_t kept = 0;
        for (int64_t i = 0; i < count; i++) {
            const double *from = points + N_POINT * i;
            if ((int64_t)from[0] % stride == 0) {
                memmove(points + N_POINT * kept, from, N_POINT * sizeof(double));
                kept++;
            }
        }
        c[CURVE_STRIDE] = stride;
        count = kept;
    }
    c[CURVE_POINTS] = count;
}

/* The counters of a slot index its arrays: in range, or the row is not learned (K_BAD, the
 * caller's ValueError). Stride and learned also bounded so doubling and counting cannot
 * overflow. */
static inline int class_counters_ok(const ClassKeyed *k, const int64_t *c)
{
    return c[CURVE_LEARNED] >= 0 && c[CURVE_LEARNED] < INT64_MAX && c[CURVE_STRIDE] >= 1 &&
           c[CURVE_STRIDE] <= INT64_MAX / 2 && c[CURVE_NEXT] >= 0 &&
           c[CURVE_NEXT] < k->window && c[CURVE_LEN] >= 0 && c[CURVE_LEN] <= k->window &&
           c[CURVE_POINTS] >= 0 && c[CURVE_POINTS] <= k->max_points && c[CURVE_DIRTY] >= 0 &&
           c[CURVE_DIRTY] <= k->window && c[C_PENDING] >= 0 && c[C_PENDING] <= k->pend;
}

/* keyed_fetch for a classifier's slot: its counters span five cache lines (the ROC bins),
 * each asked for; the first loaded, as keyed_fetch loads its counters. */
static inline void fetch_lines(const void *from, size_t bytes)
{
    for (size_t at = 0; at < bytes; at += 64) {
        __builtin_prefetch((const char *)from + at, 1, 3);
    }
    __builtin_prefetch((const char *)from + bytes - 1, 1, 3);
}

static inline void class_keyed_fetch(const ClassKeyed *k, Py_ssize_t row)
{
    const Py_ssize_t ahead = row + KEYED_AHEAD, near = row + KEYED_AHEAD / 2;
    if (ahead < k->stop) {
        const int64_t s = k->slots[ahead];
        if (s >= 0 && s < k->n_slots) {
            const int64_t *c = k->counters + s * N_CLASS_KEY_COUNTERS;
            touch(c);
            fetch_lines(c, N_CLASS_KEY_COUNTERS * sizeof(int64_t));
            fetch_span(k->weights + s * (k->n_features + 1), (k->n_features + 1) * sizeof(double));
            fetch_span(k->state + s * N_LOSS_STATE, N_LOSS_STATE * sizeof(double));
        }
    }
    if (near < k->stop) {
        const int64_t s = k->slots[near];
        if (s >= 0 && s < k->n_slots) {
            const int64_t *c = k->counters + s * N_CLASS_KEY_COUNTERS;
            const int64_t at = c[CURVE_NEXT], waiting = c[C_PENDING], points = c[CURVE_POINTS];
            const Py_ssize_t window = k->window;
            if (points >= 0 && points <= k->max_points) {
                fetch_span(k->points + (s * (k->max_points + 1) + points) * N_POINT,
                           N_POINT * sizeof(double));
            }
            if (at >= 0 && at < window) {
                __builtin_prefetch(k->ring + s * 2 * window + at, 1, 3);
                __builtin_prefetch(k->ring_y + s * window + at, 1, 3);
                __builtin_prefetch(k->ring_pred + s * window + at, 1, 3);
                __builtin_prefetch(k->ring_p + s * window + at, 1, 3);
            }
            if (waiting >= 0 && waiting < k->pend) {
                __builtin_prefetch(k->pend_err + s * k->pend + waiting, 1, 3);
                __builtin_prefetch(k->pend_idx + s * k->pend + waiting, 1, 3);
            }
        }
    }
}

static Py_ssize_t class_keyed_block(const void *arg)
{
    const ClassKeyed *k = arg;
    const Py_ssize_t n_features = k->n_features;
    const Py_ssize_t window = k->window;
    Py_ssize_t row = k->start;
    int64_t why = K_DONE;
    while (row < k->stop) {
        if (KEYED_AHEAD > 0) {
            class_keyed_fetch(k, row);
        }
        const int64_t s = k->slots[row];
        if (k->status[row] != LABELED || s < 0 || s >= k->n_slots) {
            why = K_OTHER; /* the caller's: a record of another kind, or a key with no slot */
            break;
        }
        int64_t *const c = k->counters + s * N_CLASS_KEY_COUNTERS;
        if (!class_counters_ok(k, c)) {
            why = K_BAD;
            break;
        }
        if (k->pend > 0 && c[C_PENDING] >= k->pend) {
            why = K_FULL; /* the caller hands the key's errors to its drift monitor */
            break;
        }
        const double *x = k->values + row * k->columns;
        const double y = x[n_features];
        if (y != 0.0 && y != 1.0) {
            why = K_OTHER;
            break;
        }
        double *const w = k->weights + s * (n_features + 1);
        const double z = linear(w[n_features], w, x, n_features); /* LogisticRegression's */
        if (!(-INFINITY < z && z < INFINITY)) {
            why = K_DIVERGED;
            break;
        }
        const double p = sigmoid(z);
        k->p_out[row] = p;
        /* _judged: the class code, the class predicted (False on a tie), River's log loss. */
        const int code = y == 1.0 ? 1 : 0;
        const int pred = p > 1.0 - p ? 1 : 0;
        const double clamped = clamp_proba(p);
        const double loss = code == 1 ? -log(clamped) : -log(1.0 - clamped);
        k->loss_out[row] = loss;
        /* The seed's update: theta_j -= alpha * (p - y) * x_j, the intercept as x_0 = 1. */
        const double step = k->lr * (p - y);
        descend(w, x, n_features, step);
        w[n_features] -= step;
        /* _score: ClassMetrics.update of the slot. */
        double *const st = k->state + s * N_LOSS_STATE;
        c[C_CONFUSION + 2 * code + pred]++;
        st[LOSS_N] += 1.0;
        st[LOSS_MEAN] = mean_step(st[LOSS_N], st[LOSS_MEAN], loss);
        c[C_SCORED]++;
        if (code == pred) {
            c[C_CORRECT]++;
        }
        c[(code == 1 ? C_POS_BINS : C_NEG_BINS) + roc_bin(p)]++;
        /* _window_add: Window.add of the slot, its losses' ring as loss_point keeps it. */
        double *const ring = k->ring + s * 2 * window;
        int8_t *const ring_y = k->ring_y + s * window;
        int8_t *const ring_pred = k->ring_pred + s * window;
        const int64_t slot = c[CURVE_NEXT];
        if (c[CURVE_LEN] == window) {
            c[C_RIGHT] -= ring_y[slot] == ring_pred[slot];
        }
        c[C_RIGHT] += code == pred;
        ring_y[slot] = (int8_t)code;
        ring_pred[slot] = (int8_t)pred;
        k->ring_p[s * window + slot] = p;
        ring[slot] = loss;
        if (slot < c[CURVE_DIRTY]) {
            c[CURVE_DIRTY] = slot;
        }
        c[CURVE_NEXT] = slot + 1 == window ? 0 : slot + 1;
        if (c[CURVE_LEN] < window) {
            c[CURVE_LEN]++;
        }
        const int64_t learned = ++c[CURVE_LEARNED];
        if (k->pend > 0) { /* the 0/1 error waits for the key's drift monitor */
            const int64_t at = s * k->pend + c[C_PENDING]++;
            k->pend_err[at] = code == pred ? 0.0 : 1.0;
            k->pend_idx[at] = k->index[row];
        }
        row++;
        if (learned % c[CURVE_STRIDE] == 0) {
            class_point(k, ring, c, k->points + s * N_POINT * (k->max_points + 1), learned,
                        st[LOSS_MEAN]);
        }
    }
    *k->why = why;
    return row;
}

PyDoc_STRVAR(learn_logistic_keyed_doc,
             "learn_logistic_keyed(values, status, slots, index, start, stop, weights, lr,\n"
             "                     state, counters, ring, ring_y, ring_pred, ring_p, points,\n"
             "                     pend_err, pend_idx, p_out, loss_out, why) -> int\n\n"
             "streamlearn.fast.classkeyspec.learn_logistic_keyed, compiled: the binary logistic "
             "prequential step, each row in its key's slot.");

static PyObject *learn_logistic_keyed(PyObject *self, PyObject *args)
{
    PyObject *o[17];
    Array a[17] = {0};
    ClassKeyed k;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "OOOOnnOdOOOOOOOOOOOO:learn_logistic_keyed", &o[0], &o[1],
                          &o[2], &o[3], &k.start, &k.stop, &o[4], &k.lr, &o[5], &o[6], &o[7],
                          &o[8], &o[9], &o[10], &o[11], &o[12], &o[13], &o[14], &o[15],
                          &o[16])) {
        return NULL;
    }
    if (take(o[0], &a[0], "values", FLOATS, 8, 2, 0) < 0 ||
        take(o[1], &a[1], "status", INT8S, 1, 1, 0) < 0 ||
        take(o[2], &a[2], "slots", INT64S, 8, 1, 0) < 0 ||
        take(o[3], &a[3], "index", INT64S, 8, 1, 0) < 0 ||
        take(o[4], &a[4], "weights", FLOATS, 8, 2, 1) < 0 ||
        take(o[5], &a[5], "state", FLOATS, 8, 2, 1) < 0 ||
        take(o[6], &a[6], "counters", INT64S, 8, 2, 1) < 0 ||
        take(o[7], &a[7], "ring", FLOATS, 8, 2, 1) < 0 ||
        take(o[8], &a[8], "ring_y", INT8S, 1, 2, 1) < 0 ||
        take(o[9], &a[9], "ring_pred", INT8S, 1, 2, 1) < 0 ||
        take(o[10], &a[10], "ring_p", FLOATS, 8, 2, 1) < 0 ||
        take(o[11], &a[11], "points", FLOATS, 8, 3, 1) < 0 ||
        take(o[12], &a[12], "pend_err", FLOATS, 8, 2, 1) < 0 ||
        take(o[13], &a[13], "pend_idx", INT64S, 8, 2, 1) < 0 ||
        take(o[14], &a[14], "p_out", FLOATS, 8, 1, 1) < 0 ||
        take(o[15], &a[15], "loss_out", FLOATS, 8, 1, 1) < 0 ||
        take(o[16], &a[16], "why", INT64S, 8, 1, 1) < 0) {
        goto done;
    }
    k.values = a[0].view.buf;
    k.columns = a[0].view.shape[1];
    k.status = a[1].view.buf;
    k.slots = a[2].view.buf;
    k.index = a[3].view.buf;
    k.weights = a[4].view.buf;
    k.n_slots = a[4].view.shape[0];
    k.n_features = a[4].view.shape[1] - 1;
    k.state = a[5].view.buf;
    k.counters = a[6].view.buf;
    k.ring = a[7].view.buf;
    k.ring_y = a[8].view.buf;
    k.ring_pred = a[9].view.buf;
    k.ring_p = a[10].view.buf;
    k.window = a[8].view.shape[1];
    k.points = a[11].view.buf;
    k.max_points = a[11].view.shape[1] - 1;
    k.pend_err = a[12].view.buf;
    k.pend_idx = a[13].view.buf;
    k.pend = a[12].view.shape[1];
    k.p_out = a[14].view.buf;
    k.loss_out = a[15].view.buf;
    k.why = a[16].view.buf;
    const Py_ssize_t rows = a[0].view.shape[0];
    const Py_ssize_t n = k.n_slots;
    int ok = k.start >= 0 && k.stop >= k.start && k.stop <= rows && len_of(&a[1]) >= k.stop &&
             len_of(&a[2]) >= k.stop && len_of(&a[3]) >= k.stop && k.n_features >= 0 &&
             k.columns >= k.n_features + 1 && a[5].view.shape[0] == n &&
             a[5].view.shape[1] == N_LOSS_STATE && a[6].view.shape[0] == n &&
             a[6].view.shape[1] == N_CLASS_KEY_COUNTERS && a[7].view.shape[0] == n &&
             a[7].view.shape[1] == 2 * k.window && k.window >= 1 && a[8].view.shape[0] == n &&
             a[9].view.shape[0] == n && a[9].view.shape[1] == k.window &&
             a[10].view.shape[0] == n && a[10].view.shape[1] == k.window &&
             a[11].view.shape[0] == n && k.max_points >= 1 && a[11].view.shape[2] == N_POINT &&
             a[12].view.shape[0] == n && a[13].view.shape[0] == n &&
             a[13].view.shape[1] == k.pend && len_of(&a[14]) >= k.stop &&
             len_of(&a[15]) >= k.stop && len_of(&a[16]) >= 1;
    if (ok) {
        result = run_block(class_keyed_block, &k, (k.stop - k.start) * (k.n_features + 1));
    }
    if (!ok || *k.why == K_BAD) {
        Py_CLEAR(result);
        PyErr_SetString(PyExc_ValueError,
                        "learn_logistic_keyed: arrays or counters out of range");
    }
done:
    release(a, 17);
    return result;
}

/* classkeyspec.score_losses: the losses in order into the running mean and loss_point. */
static Py_ssize_t score_block(const void *arg)
{
    const Classify *k = arg;
    const double *loss = k->loss_out;
    double loss_n = k->state[LOSS_N];
    double loss_mean = k->state[LOSS_MEAN];
    for (Py_ssize_t row = k->start; row < k->stop; row++) {
        const double value = loss[row];
        loss_n += 1.0;
        loss_mean = mean_step(loss_n, loss_mean, value);
        loss_point(k, value, loss_mean);
    }
    k->state[LOSS_N] = loss_n;
    k->state[LOSS_MEAN] = loss_mean;
    return k->stop;
}

PyDoc_STRVAR(score_losses_doc,
             "score_losses(loss, start, stop, state, ring, curve, points) -> None\n\n"
             "streamlearn.fast.classkeyspec.score_losses, compiled: losses loss[start:stop] into "
             "the running mean and the log-loss curve.");

static PyObject *score_losses(PyObject *self, PyObject *args)
{
    PyObject *o[5] = {0};
    Array a[5] = {0};
    Classify k = {0};
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "OnnOOOO:score_losses", &o[0], &k.start, &k.stop, &o[1],
                          &o[2], &o[3], &o[4])) {
        return NULL;
    }
    if (take(o[0], &a[0], "loss", FLOATS, 8, 1, 0) < 0 ||
        take(o[1], &a[1], "state", FLOATS, 8, 1, 1) < 0) {
        goto done;
    }
    k.loss_out = a[0].view.buf; /* read here: the losses scored */
    k.state = a[1].view.buf;
    if (k.start < 0 || k.stop < k.start || k.stop > len_of(&a[0]) ||
        len_of(&a[1]) < N_LOSS_STATE) {
        PyErr_SetString(PyExc_ValueError, "score_losses: arrays out of range");
        goto done;
    }
    if (take_curve(o + 2, a + 2, &k, "score_losses") < 0) {
        goto done;
    }
    result = run_block(score_block, &k, k.stop - k.start);
    if (result != NULL) {
        Py_DECREF(result);
        result = Py_NewRef(Py_None);
    }
done:
    release(a, 5);
    return result;
}

/* -- feed_values (ADWIN) ----------------------------------------------------------- */

/* Python's float % (the result takes the divisor's sign), as spec.feed_values uses it. */
static double py_mod(double a, double b)
{
    double r = fmod(a, b);
    if (r != 0.0 && ((r < 0.0) != (b < 0.0))) {
        r += b;
    }
    return r;
}

static Py_ssize_t feed_block(double *buf, const double *values, Py_ssize_t start,
                             Py_ssize_t stop)
{
    const double delta = buf[DELTA];
    const double clock = buf[CLOCK];
    const Py_ssize_t max_buckets = (Py_ssize_t)buf[MAX_BUCKETS];
    const double min_length = buf[MIN_LENGTH];
    const double grace = buf[GRACE];
    const Py_ssize_t cap = max_buckets + 1; /* a row briefly holds one summary more */
    const Py_ssize_t stride = 2 * cap + 1;
    double total = buf[TOTAL];
    double variance = buf[VARIANCE];
    double width = buf[WIDTH];
    double tick = buf[TICK];
    double detections = buf[DETECTIONS];
    Py_ssize_t rows = (Py_ssize_t)buf[ROWS];
    int detected = buf[DETECTED] != 0.0;
    double seen = buf[SEEN];
    double seen_total = buf[SEEN_TOTAL];
    Py_ssize_t hit = -1;
    for (Py_ssize_t i = start; i < stop; i++) {
        const double x = values[i];
        if (detected) {
            /* River replaces its detector on the update after a detection. */
            total = variance = width = tick = detections = seen = seen_total = 0.0;
            rows = 1;
            buf[HEADER] = 0.0;
            detected = 0;
        }
        seen += 1.0;
        seen_total += x;

        /* Insert x as a bucket of one value in row 0 (Welford's variance term). */
        Py_ssize_t count = (Py_ssize_t)buf[HEADER];
        buf[HEADER + 1 + count] = x;
        buf[HEADER + 1 + cap + count] = 0.0;
        buf[HEADER] = (double)count + 1.0;
        width += 1.0;
        double increment = 0.0;
        if (width > 1.0) {
            const double deviation = x - total / (width - 1.0);
            increment = (width - 1.0) * deviation * deviation / width;
        }
        variance += increment;
        total += x;

        /* A full row merges its two oldest buckets into one of the next row, and up. */
        Py_ssize_t row = 0;
        for (;;) {
            const Py_ssize_t base = HEADER + row * stride;
            if ((Py_ssize_t)buf[base] != cap) {
                break;
            }
            const double size = ldexp(1.0, (int)row);
            const double t0 = buf[base + 1];
            const double t1 = buf[base + 2];
            const double v0 = buf[base + 1 + cap];
            const double v1 = buf[base + 2 + cap];
            const double mu0 = t0 / size;
            const double mu1 = t1 / size;
            const double merged_total = t0 + t1;
            const double merged_variance = v0 + v1 + size * 0.5 * (mu0 - mu1) * (mu0 - mu1);
            const Py_ssize_t upper = base + stride;
            if (row + 1 >= rows) {
                buf[upper] = 0.0;
                rows++;
            }
            const Py_ssize_t k = (Py_ssize_t)buf[upper];
            buf[upper + 1 + k] = merged_total;
            buf[upper + 1 + cap + k] = merged_variance;
            buf[upper] = (double)k + 1.0;
            for (Py_ssize_t j = 0; j < cap - 2; j++) {
                buf[base + 1 + j] = buf[base + 3 + j];
                buf[base + 1 + cap + j] = buf[base + 3 + cap + j];
            }
            buf[base] = (double)cap - 2.0;
            if (k + 1 <= max_buckets) {
                break;
            }
            row++;
        }

        /* Every `clock` values: test each cut, oldest buckets first; while one shows a
         * change, drop the oldest bucket and test again. */
        tick += 1.0;
        if (tick > I32_MAX) {
            tick -= I32_SPAN;
        }
        int change = 0;
        if (py_mod(tick, clock) == 0.0 && width > grace) {
            int again = 1;
            while (again) {
                again = 0;
                const double delta_prime = log(2.0 * log(width) / delta);
                const double mean_variance = variance / width;
                double n0 = 0.0;
                double n1 = width;
                double u0 = 0.0;
                double u1 = total;
                int stop_scan = 0;
                Py_ssize_t r = rows - 1;
                while (r >= 0 && !stop_scan) {
                    const Py_ssize_t base = HEADER + r * stride;
                    const double size = ldexp(1.0, (int)r);
                    const Py_ssize_t n = (Py_ssize_t)buf[base];
                    for (Py_ssize_t k = 0; k < n; k++) {
                        n0 += size;
                        n1 -= size;
                        const double part = buf[base + 1 + k];
                        u0 += part;
                        u1 -= part;
                        if (r == 0 && k == n - 1) {
                            stop_scan = 1; /* the newest bucket: no cut after it */
                            break;
                        }
                        if (n1 < min_length || n0 < min_length) {
                            continue;
                        }
                        const double delta_mean = u0 / n0 - u1 / n1;
                        const double m_recip =
                            1.0 / (n0 - min_length + 1.0) + 1.0 / (n1 - min_length + 1.0);
                        const double spread = 2.0 * m_recip * mean_variance * delta_prime;
                        if (!(spread >= 0.0)) { /* River's NaN bound: no cut */
                            continue;
                        }
                        const double epsilon =
                            sqrt(spread) + 2.0 / 3.0 * delta_prime * m_recip;
                        if (!(fabs(delta_mean) > epsilon)) {
                            continue;
                        }
                        again = 1;
                        change = 1;
                        if (width > 0.0) {
                            /* Drop the oldest bucket (first of the last row). */
                            const Py_ssize_t last = rows - 1;
                            const Py_ssize_t top = HEADER + last * stride;
                            const double size_old = ldexp(1.0, (int)last);
                            const double u_old = buf[top + 1];
                            const double v_old = buf[top + 1 + cap];
                            const double mu_old = u_old / size_old;
                            width -= size_old;
                            total -= u_old;
                            const double mu_window = total / width;
                            variance -= v_old + size_old * width * (mu_old - mu_window) *
                                                    (mu_old - mu_window) / (size_old + width);
                            const Py_ssize_t left = (Py_ssize_t)buf[top] - 1;
                            for (Py_ssize_t j = 0; j < left; j++) {
                                buf[top + 1 + j] = buf[top + 2 + j];
                                buf[top + 1 + cap + j] = buf[top + 2 + cap + j];
                            }
                            buf[top] = (double)left;
                            if (left == 0) {
                                rows--;
                            }
                            stop_scan = 1;
                            break;
                        }
                    }
                    r--;
                }
            }
        }
        if (change) {
            detections += 1.0;
            detected = 1;
            hit = i;
            break;
        }
    }
    buf[TOTAL] = total;
    buf[VARIANCE] = variance;
    buf[WIDTH] = width;
    buf[TICK] = tick;
    buf[DETECTIONS] = detections;
    buf[ROWS] = (double)rows;
    buf[DETECTED] = detected ? 1.0 : 0.0;
    buf[SEEN] = seen;
    buf[SEEN_TOTAL] = seen_total;
    if (hit >= 0) {
        return hit;
    }
    if (detected) {
        return -(Py_ssize_t)clock;
    }
    double wait = fmin(clock - py_mod(tick, clock), I32_MAX - tick);
    return -(Py_ssize_t)fmax(1.0, wait);
}

PyDoc_STRVAR(feed_values_doc,
             "feed_values(buf, values, start, stop) -> int\n\n"
             "streamlearn.fast.spec.feed_values, compiled: feed values[start:stop] to ADWIN.");

static PyObject *feed_values(PyObject *self, PyObject *args)
{
    PyObject *o[2];
    Py_ssize_t start, stop;
    Array a[2] = {0};
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "OOnn:feed_values", &o[0], &o[1], &start, &stop)) {
        return NULL;
    }
    if (take(o[0], &a[0], "buf", FLOATS, 8, 1, 1) < 0 ||
        take(o[1], &a[1], "values", FLOATS, 8, 1, 0) < 0) {
        goto done;
    }
    double *buf = a[0].view.buf;
    if (len_of(&a[0]) < HEADER) {
        PyErr_SetString(PyExc_ValueError, "feed_values: the state buffer is too short");
        goto done;
    }
    const double max_buckets = buf[MAX_BUCKETS];
    const double rows = buf[ROWS];
    /* The parameters ADWIN.__init__ accepts, and a buffer with room for every row. */
    if (!(max_buckets >= 2.0 && max_buckets < 1e6 && buf[CLOCK] >= 1.0 && rows >= 1.0 &&
          rows <= MAX_ROWS) ||
        len_of(&a[0]) < HEADER + MAX_ROWS * (2 * ((Py_ssize_t)max_buckets + 1) + 1) ||
        start < 0 || stop < start || stop > len_of(&a[1])) {
        PyErr_SetString(PyExc_ValueError, "feed_values: state or range out of bounds");
        goto done;
    }
    Py_ssize_t hit;
    if (stop - start >= NOGIL_WORK) {
        Py_BEGIN_ALLOW_THREADS;
        hit = feed_block(buf, a[1].view.buf, start, stop);
        Py_END_ALLOW_THREADS;
    } else {
        hit = feed_block(buf, a[1].view.buf, start, stop);
    }
    result = PyLong_FromSsize_t(hit);
done:
    release(a, 2);
    return result;
}

/* -- score_remember ---------------------------------------------------------------- */

/* pow's exponent read at run time: with a constant 2.0 the compiler writes e * e, which
 * rounds differently from the C library's pow (Python's ** calls pow) for some e. */
static volatile double SQUARE = 2.0;

PyDoc_STRVAR(score_remember_doc,
             "score_remember(hot, ys, yhats, y, yhat, slot, length, total) -> (slot, length, "
             "total)\n\n"
             "streamlearn.fast.remember.score_remember, compiled: one record's metrics and window.");

static int float_arg(PyObject *obj, double *out)
{
    *out = PyFloat_AsDouble(obj);
    return *out == -1.0 && PyErr_Occurred() ? -1 : 0;
}

static int index_arg(PyObject *obj, Py_ssize_t *out)
{
    *out = PyLong_AsSsize_t(obj);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

/* One call a record (the record path's Learner._score_and_remember): the arguments come
 * by position without a tuple, and the buffers are checked as every kernel's are. */
static PyObject *score_remember(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    double y, yhat, total;
    Py_ssize_t slot, length;
    Array a[3] = {0};
    PyObject *result = NULL;
    if (nargs != 8) {
        PyErr_Format(PyExc_TypeError, "score_remember takes 8 arguments (%zd given)", nargs);
        return NULL;
    }
    if (float_arg(args[3], &y) < 0 || float_arg(args[4], &yhat) < 0 ||
        index_arg(args[5], &slot) < 0 || index_arg(args[6], &length) < 0 ||
        float_arg(args[7], &total) < 0 || take(args[0], &a[0], "hot", FLOATS, 8, 1, 1) < 0 ||
        take(args[1], &a[1], "ys", FLOATS, 8, 1, 1) < 0 ||
        take(args[2], &a[2], "yhats", FLOATS, 8, 1, 1) < 0) {
        goto done;
    }
    const Py_ssize_t size = len_of(&a[1]);
    if (len_of(&a[0]) < 8 || size < 1 || len_of(&a[2]) != size || slot < 0 || slot >= size ||
        length < 0 || length > size) {
        PyErr_SetString(PyExc_ValueError, "score_remember: state or window out of bounds");
        goto done;
    }
    double *hot = a[0].view.buf, *ys = a[1].view.buf, *yhats = a[2].view.buf;
    /* MAE, RMSE and R2 (metrics.FIELDS), as update_all with w = 1.0 */
    const double error = y - yhat;
    const double absolute = fabs(error);
    hot[0] += 1.0;
    hot[1] = mean_step(hot[0], hot[1], absolute);
    hot[2] += 1.0;
    hot[3] = mean_step(hot[2], hot[3], pow(error, SQUARE));
    hot[4] += 1.0;
    const double old = hot[5];
    hot[5] = old + (1.0 / hot[4]) * (y - old);
    hot[6] += (y - old) * (y - hot[5]);
    hot[7] += error * error;
    /* the rolling window: the ring, its length, the running |error| sum */
    if (length == size) {
        total -= fabs(ys[slot] - yhats[slot]);
    } else {
        length++;
    }
    ys[slot] = y;
    yhats[slot] = yhat;
    slot++;
    if (slot == size) {
        slot = 0;
    }
    result = Py_BuildValue("nnd", slot, length, total + absolute);
done:
    release(a, 3);
    return result;
}

/* -- the module -------------------------------------------------------------------- */

static PyMethodDef methods[] = {
    {"parse_lines", parse_lines, METH_VARARGS, parse_lines_doc},
    {"learn_rows", learn_rows, METH_VARARGS, learn_rows_doc},
    {"learn_logistic", learn_logistic, METH_VARARGS, learn_logistic_doc},
    {"learn_softmax", learn_softmax, METH_VARARGS, learn_softmax_doc},
    {"feed_values", feed_values, METH_VARARGS, feed_values_doc},
    {"learn_rows_keyed", learn_rows_keyed, METH_VARARGS, learn_rows_keyed_doc},
    {"held_slots", held_slots, METH_VARARGS, held_slots_doc},
    {"cut_column", cut_column, METH_VARARGS, cut_column_doc},
    {"learn_logistic_keyed", learn_logistic_keyed, METH_VARARGS, learn_logistic_keyed_doc},
    {"score_losses", score_losses, METH_VARARGS, score_losses_doc},
    {"score_remember", (PyCFunction)(void (*)(void))score_remember, METH_FASTCALL,
     score_remember_doc},
    {NULL, NULL, 0, NULL},
};

static int add_constants(PyObject *module)
{
    /* The numbers compiled in, for the test that compares them with the Python modules. */
    static const struct {
        const char *name;
        long value;
    } ints[] = {
        {"LABELED", LABELED},     {"UNLABELED", UNLABELED},   {"DOUBT", DOUBT},
        {"REJECTED", REJECTED},   {"NOTHING", NOTHING},       {"N_STATE", N_STATE},
        {"N_COUNTERS", N_COUNTERS}, {"HEADER", HEADER},       {"MAX_ROWS", MAX_ROWS},
        {"INTERCEPT", INTERCEPT}, {"ABS_SUM", ABS_SUM},       {"STOPPED", STOPPED},
        {"SEEN_TOTAL", SEEN_TOTAL}, {"LOSS_N", LOSS_N},       {"LOSS_MEAN", LOSS_MEAN},
        {"N_LOSS_STATE", N_LOSS_STATE}, {"N_KEY_COUNTERS", N_KEY_COUNTERS},
        {"K_FULL", K_FULL},       {"N_CURVE", N_CURVE},
        {"C_PENDING", C_PENDING}, {"C_RIGHT", C_RIGHT},       {"C_SCORED", C_SCORED},
        {"C_CORRECT", C_CORRECT}, {"C_CONFUSION", C_CONFUSION},
        {"C_POS_BINS", C_POS_BINS}, {"C_NEG_BINS", C_NEG_BINS}, {"N_BINS", N_BINS},
        {"N_CLASS_KEY_COUNTERS", N_CLASS_KEY_COUNTERS}, {"N_POINT", N_POINT},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (PyModule_AddIntConstant(module, ints[i].name, ints[i].value) < 0) {
            return -1;
        }
    }
    PyObject *diverged = PyFloat_FromDouble(DIVERGED);
    if (diverged == NULL || PyModule_AddObject(module, "DIVERGED", diverged) < 0) {
        Py_XDECREF(diverged);
        return -1;
    }
    return 0;
}

static int exec_module(PyObject *module)
{
    if (c_locale == (locale_t)0) {
        /* Without it (out of memory) long numbers go to the decoder: slower, same values. */
        c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    }
    PyObject *index = PyType_FromModuleAndSpec(module, &index_spec, NULL);
    if (index == NULL || PyModule_AddObject(module, "KeyIndex", index) < 0) {
        Py_XDECREF(index);
        return -1;
    }
    return add_constants(module);
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
    {0, NULL},
};

static struct PyModuleDef definition = {
    PyModuleDef_HEAD_INIT,
    .m_name = "streamlearn.fast._kernels",
    .m_doc = "The compiled loops of streamlearn's fast path "
             "(their specification: streamlearn.fast.spec).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModuleDef_Init(&definition); }
