/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The "db_postprocess" step: turns the probability map of a text detector
 * trained with differentiable binarisation (DB, such as PP-OCR's detector)
 * into boxes in original image coordinates.  It consumes the map (fp32
 * [N,1,H,W] or [N,H,W]) and the image info passed around the model (fp32
 * [N,4] = orig_h, orig_w, ratio_h, ratio_w with ratio = resized / original)
 * and produces three tensors, ragged across the batch:
 *
 *   boxes  fp32 [K,8]  x1,y1 .. x4,y4 clockwise from the top-left corner
 *                      (or [K,4] x1,y1,x2,y2 with "quad": false)
 *   scores fp32 [K]    mean probability inside each box
 *   counts int32 [N]   image i owns rows sum(counts[:i]) .. +counts[i]
 *
 * Per image, in map pixels (a pixel's coordinates are those of its centre):
 *
 *   map > thresh ---> 8-connected blobs, in raster order of their first
 *        |            pixel (breadth-first with an explicit queue; at most
 *        |            max_candidates blobs are looked at)
 *        v
 *   row extremes of the blob ---> convex hull (monotone chain)
 *        |
 *        v
 *   for every hull edge: the rectangle with a side on that edge that holds
 *   the hull; keep the smallest  ........... +-----------+
 *        |                                   |  . . . .  |  w x h
 *        v                                   +-----------+
 *   skip if min(w, h) < min_size
 *   score = mean of the map over the pixels whose centre lies inside the
 *           rectangle (scanline fill); skip if score < box_thresh
 *   unclip: d = w * h * unclip_ratio / (2 * (w + h)); w += 2d; h += 2d
 *   skip if min(w, h) < min_size + 2
 *   corners: x / ratio_w, y / ratio_h, clockwise from top-left, clipped to
 *            [0, orig_w] x [0, orig_h]
 *
 * The top-left corner is the one with the smallest x + y (the smaller y on a
 * tie).  A blob whose pixels lie on one line has no area and gives no box.
 * Coordinates are not rounded.  Scratch memory (a mask and a queue of H*W,
 * a few rows of H) comes from the request arena, once per call.
 * Every consumed tensor other than the map and the info passes through.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "builtin.h"
#include "core/error.h"
#include "core/tensor.h"

#define DB_NAME "db_postprocess"
#define DB_EPS 1e-6

typedef struct db_state {
    const mi_host_api *host;
    double             thresh;
    double             box_thresh;
    double             unclip_ratio;
    double             min_size;
    int64_t            max_candidates;
    bool               is_quad;
    char               map[MI_NAME_MAX];
    char               info[MI_NAME_MAX];
    char               boxes[MI_NAME_MAX];
    char               scores[MI_NAME_MAX];
    char               counts[MI_NAME_MAX];
} db_state;

typedef struct db_point {
    double x;
    double y;
} db_point;

/* A rectangle: centre, unit vector along side w; side h is along (-uy, ux). */
typedef struct db_rect {
    db_point c;
    double   ux;
    double   uy;
    double   w;
    double   h;
} db_rect;

/* Per-call working memory, from the request arena. */
typedef struct db_scratch {
    uint8_t  *mask;    /* H*W: 1 = above thresh and not yet in a blob */
    uint32_t *queue;   /* H*W: pixel indices of the current blob */
    int32_t  *row_min; /* H: smallest x of the blob on each row */
    int32_t  *row_max; /* H: largest x of the blob on each row */
    db_point *pts;     /* 2H: row extremes, sorted by (y, x) */
    db_point *hull;    /* 4H + 2: the hull being built */
    float    *boxes;   /* cap rows of 8 (or 4) floats */
    float    *scores;  /* cap floats */
    size_t    n_out;
    size_t    cap;
} db_scratch;

/* ---- Params ---- */

static mi_status
db_get_name(const mi_host_api *host, const mi_params *params, const char *key,
            bool required, const char *def, char *out, mi_error *err)
{
    const char *name;
    size_t      len;
    mi_status   rc;

    rc = host->params_get_str(params, key, required, def, &name, err);
    if (rc != MI_OK) {
        return rc;
    }
    len = strlen(name);
    if (len == 0 || len >= MI_NAME_MAX) {
        return host->params_error(params, key, MI_EINVAL, err,
                                  "a tensor name has 1 to %d bytes",
                                  MI_NAME_MAX - 1);
    }
    memcpy(out, name, len + 1);
    return MI_OK;
}

/* Reads a number that must lie in [lo, hi]. */
static mi_status
db_get_number(const mi_host_api *host, const mi_params *params, const char *key,
              double def, double lo, double hi, double *out, mi_error *err)
{
    mi_status rc;

    rc = host->params_get_f64(params, key, false, def, out, err);
    if (rc != MI_OK) {
        return rc;
    }
    if (!(*out >= lo && *out <= hi)) {
        return host->params_error(params, key, MI_EINVAL, err,
                                  "expected a number in [%g, %g], got %g", lo,
                                  hi, *out);
    }
    return MI_OK;
}

static mi_status
db_create(const mi_host_api *host, const mi_params *params, void **state,
          mi_error *err)
{
    db_state  s;
    db_state *st;
    mi_status rc;

    memset(&s, 0, sizeof(s));
    s.host = host;
    rc     = db_get_name(host, params, "map", true, NULL, s.map, err);
    if (rc == MI_OK) {
        rc = db_get_name(host, params, "info", true, NULL, s.info, err);
    }
    if (rc == MI_OK) {
        rc = db_get_name(host, params, "boxes", false, "boxes", s.boxes, err);
    }
    if (rc == MI_OK) {
        rc =
            db_get_name(host, params, "scores", false, "scores", s.scores, err);
    }
    if (rc == MI_OK) {
        rc =
            db_get_name(host, params, "counts", false, "counts", s.counts, err);
    }
    if (rc == MI_OK) {
        rc = db_get_number(host, params, "thresh", 0.3, 0.0, 1.0, &s.thresh,
                           err);
    }
    if (rc == MI_OK) {
        rc = db_get_number(host, params, "box_thresh", 0.6, 0.0, 1.0,
                           &s.box_thresh, err);
    }
    if (rc == MI_OK) {
        rc = db_get_number(host, params, "unclip_ratio", 1.5, 0.0, 100.0,
                           &s.unclip_ratio, err);
    }
    if (rc == MI_OK) {
        rc = db_get_number(host, params, "min_size", 3.0, 0.0, 1e6, &s.min_size,
                           err);
    }
    if (rc == MI_OK) {
        rc = host->params_get_i64(params, "max_candidates", false, 1000,
                                  &s.max_candidates, err);
    }
    if (rc == MI_OK && (s.max_candidates < 1 || s.max_candidates > 1000000)) {
        rc = host->params_error(params, "max_candidates", MI_EINVAL, err,
                                "expected an integer in [1, 1000000], got "
                                "%lld",
                                (long long)s.max_candidates);
    }
    if (rc == MI_OK) {
        rc =
            host->params_get_bool(params, "quad", false, true, &s.is_quad, err);
    }
    if (rc != MI_OK) {
        return rc;
    }
    if (strcmp(s.boxes, s.scores) == 0 || strcmp(s.boxes, s.counts) == 0 ||
        strcmp(s.scores, s.counts) == 0) {
        return host->params_error(params, NULL, MI_EINVAL, err,
                                  "'boxes', 'scores' and 'counts' need "
                                  "three different names");
    }
    if (strcmp(s.map, s.info) == 0) {
        return host->params_error(params, "info", MI_EINVAL, err,
                                  "'%s' is also the map", s.info);
    }
    st = host->alloc(sizeof(*st));
    if (st == NULL) {
        return mi_error_set(err, MI_ENOMEM, DB_NAME ": out of memory");
    }
    *st    = s;
    *state = st;
    return MI_OK;
}

static void
db_destroy(void *state)
{
    db_state *st = state;

    if (st != NULL) {
        st->host->free(st);
    }
}

/* ---- Checks shared by infer_format and apply ---- */

/* Writes "'a', 'b'" into buf, or "none". */
static void
db_join_names(const char *const *names, uint32_t n, char *buf, size_t size)
{
    size_t len = 0;

    snprintf(buf, size, "none");
    for (uint32_t i = 0; i < n && len < size; i++) {
        int k = snprintf(buf + len, size - len, "%s'%s'", i > 0 ? ", " : "",
                         names[i]);
        if (k < 0) {
            return;
        }
        len += (size_t)k;
    }
}

/*
 * Finds the map and the info among the consumed tensors and checks that no
 * tensor passed on carries an output name.
 */
static mi_status
db_pick(const db_state *st, const char *const *names, uint32_t n,
        uint32_t *map_idx, uint32_t *info_idx, mi_error *err)
{
    const char *outputs[3] = {st->boxes, st->scores, st->counts};
    char        list[200];

    *map_idx  = n;
    *info_idx = n;
    for (uint32_t i = 0; i < n; i++) {
        if (strcmp(names[i], st->map) == 0) {
            *map_idx = i;
        } else if (strcmp(names[i], st->info) == 0) {
            *info_idx = i;
        } else {
            for (int k = 0; k < 3; k++) {
                if (strcmp(names[i], outputs[k]) == 0) {
                    return mi_error_set(err, MI_EINVAL,
                                        DB_NAME
                                        ": output '%s' is already "
                                        "the name of a tensor passed on",
                                        outputs[k]);
                }
            }
        }
    }
    if (*map_idx == n || *info_idx == n) {
        db_join_names(names, n, list, sizeof(list));
        return mi_error_set(err, MI_EINVAL,
                            DB_NAME ": no tensor '%s' (have: "
                                    "%s)",
                            *map_idx == n ? st->map : st->info, list);
    }
    if (n - 2 + 3 > MI_MAX_TENSORS) {
        return mi_error_set(err, MI_EINVAL,
                            DB_NAME ": the outputs would make more than %d "
                                    "tensors",
                            MI_MAX_TENSORS);
    }
    return MI_OK;
}

/* A dimension fits when either side is -1 (unknown) or both are equal. */
static bool
db_dim_fits(int64_t actual, int64_t want)
{
    return actual < 0 || want < 0 || actual == want;
}

/*
 * Checks the map and info specs; *n gets the batch size (-1 if unknown),
 * *h and *w the map's size.
 */
static mi_status
db_check_specs(const mi_tensor_spec *map, const mi_tensor_spec *info,
               int64_t *n, int64_t *h, int64_t *w, mi_error *err)
{
    char got[160];
    bool ok;

    ok = map->dtype == MI_DTYPE_FP32 && (map->rank == 3 || map->rank == 4);
    if (ok && map->rank == 4) {
        ok = db_dim_fits(map->shape[1], 1);
    }
    if (!ok) {
        return mi_error_set(err, MI_EINVAL,
                            DB_NAME ": tensor '%s': expected fp32[N,1,H,W] "
                                    "or fp32[N,H,W], got %s",
                            map->name, mi_spec_str(map, got, sizeof(got)));
    }
    if (info->dtype != MI_DTYPE_FP32 || info->rank != 2 ||
        !db_dim_fits(info->shape[1], 4) ||
        !db_dim_fits(info->shape[0], map->shape[0])) {
        char want[64];

        snprintf(want, sizeof(want), "fp32[%lld,4]", (long long)map->shape[0]);
        return mi_error_set(
            err, MI_EINVAL,
            DB_NAME ": tensor '%s': expected %s (orig_h, "
                    "orig_w, ratio_h, ratio_w per image), got %s",
            info->name, want, mi_spec_str(info, got, sizeof(got)));
    }
    *n = map->shape[0] >= 0 ? map->shape[0] : info->shape[0];
    *h = map->shape[map->rank - 2];
    *w = map->shape[map->rank - 1];
    return MI_OK;
}

static void
db_spec(mi_tensor_spec *s, const char *name, mi_dtype dtype, int32_t rank,
        int64_t d0, int64_t d1)
{
    memset(s, 0, sizeof(*s));
    memcpy(s->name, name, strlen(name) + 1);
    s->dtype    = dtype;
    s->rank     = rank;
    s->shape[0] = d0;
    s->shape[1] = d1;
}

/* ---- infer_format ---- */

static mi_status
db_infer_format(void *state, const mi_format *in, mi_format *out, mi_error *err)
{
    const db_state *st = state;
    const char     *names[MI_MAX_TENSORS];
    mi_format       res;
    uint32_t        mi;
    uint32_t        ii;
    int64_t         n;
    int64_t         h;
    int64_t         w;

    for (uint32_t i = 0; i < in->n_tensors; i++) {
        names[i] = in->tensors[i].name;
    }
    if (db_pick(st, names, in->n_tensors, &mi, &ii, err) != MI_OK ||
        db_check_specs(&in->tensors[mi], &in->tensors[ii], &n, &h, &w, err) !=
            MI_OK) {
        return MI_EINVAL;
    }
    memset(&res, 0, sizeof(res));
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        if (i != mi && i != ii) {
            res.tensors[res.n_tensors++] = in->tensors[i];
        }
    }
    db_spec(&res.tensors[res.n_tensors++], st->boxes, MI_DTYPE_FP32, 2, -1,
            st->is_quad ? 8 : 4);
    db_spec(&res.tensors[res.n_tensors++], st->scores, MI_DTYPE_FP32, 1, -1, 0);
    db_spec(&res.tensors[res.n_tensors++], st->counts, MI_DTYPE_INT32, 1, n, 0);
    *out = res;
    return MI_OK;
}

/* ---- Geometry ---- */

static double
db_cross(db_point o, db_point a, db_point b)
{
    return (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x);
}

/*
 * Convex hull of points sorted by (y, x), counter-clockwise in a y-up
 * frame, without collinear points (Andrew's monotone chain with the roles
 * of x and y swapped, which works for any lexicographic order).  `hull`
 * holds 2n + 1 points; returns the number of hull points.
 */
static size_t
db_hull(const db_point *p, size_t n, db_point *hull)
{
    size_t k = 0;

    if (n < 3) {
        memcpy(hull, p, n * sizeof(*p));
        return n;
    }
    for (size_t i = 0; i < n; i++) {
        while (k >= 2 && db_cross(hull[k - 2], hull[k - 1], p[i]) <= 0) {
            k--;
        }
        hull[k++] = p[i];
    }
    for (size_t i = n - 1, t = k + 1; i-- > 0;) {
        while (k >= t && db_cross(hull[k - 2], hull[k - 1], p[i]) <= 0) {
            k--;
        }
        hull[k++] = p[i];
    }
    return k - 1; /* the last point repeats the first */
}

/*
 * Smallest-area rectangle around a convex polygon: one of its sides lies on
 * a hull edge, so each edge is tried, projecting every hull point on the
 * edge's direction u and its normal v.  Returns false for fewer than three
 * hull points (no area).
 */
static bool
db_min_rect(const db_point *hull, size_t n, db_rect *out)
{
    double best = -1.0;

    if (n < 3) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        db_point a    = hull[i];
        db_point b    = hull[(i + 1) % n];
        double   ex   = b.x - a.x;
        double   ey   = b.y - a.y;
        double   len  = sqrt(ex * ex + ey * ey);
        double   umin = 0.0;
        double   umax = 0.0;
        double   vmin = 0.0;
        double   vmax = 0.0;
        double   area;

        if (len <= 0.0) {
            continue;
        }
        ex /= len;
        ey /= len;
        for (size_t j = 0; j < n; j++) {
            double dx = hull[j].x - a.x;
            double dy = hull[j].y - a.y;
            double u  = dx * ex + dy * ey;
            double v  = -dx * ey + dy * ex;

            umin = u < umin ? u : umin;
            umax = u > umax ? u : umax;
            vmin = v < vmin ? v : vmin;
            vmax = v > vmax ? v : vmax;
        }
        area = (umax - umin) * (vmax - vmin);
        if (best < 0.0 || area < best) {
            double mu = (umin + umax) / 2.0;
            double mv = (vmin + vmax) / 2.0;

            best     = area;
            out->ux  = ex;
            out->uy  = ey;
            out->w   = umax - umin;
            out->h   = vmax - vmin;
            out->c.x = a.x + mu * ex - mv * ey;
            out->c.y = a.y + mu * ey + mv * ex;
        }
    }
    return best >= 0.0;
}

/* The corners of r in cyclic order. */
static void
db_rect_corners(const db_rect *r, db_point q[4])
{
    double ax = r->ux * r->w / 2.0;
    double ay = r->uy * r->w / 2.0;
    double bx = -r->uy * r->h / 2.0;
    double by = r->ux * r->h / 2.0;

    q[0].x = r->c.x - ax - bx;
    q[0].y = r->c.y - ay - by;
    q[1].x = r->c.x + ax - bx;
    q[1].y = r->c.y + ay - by;
    q[2].x = r->c.x + ax + bx;
    q[2].y = r->c.y + ay + by;
    q[3].x = r->c.x - ax + bx;
    q[3].y = r->c.y - ay + by;
}

/*
 * Mean of the map over the pixels whose centre lies inside the convex
 * quadrilateral q (edges included): each row crossing q contributes the
 * run between the two points where it meets q's edges.
 */
static double
db_quad_mean(const float *map, int64_t h, int64_t w, const db_point q[4])
{
    double  ymin = q[0].y;
    double  ymax = q[0].y;
    double  sum  = 0.0;
    size_t  n    = 0;
    int64_t y0;
    int64_t y1;

    for (int i = 1; i < 4; i++) {
        ymin = q[i].y < ymin ? q[i].y : ymin;
        ymax = q[i].y > ymax ? q[i].y : ymax;
    }
    y0 = (int64_t)ceil(ymin - DB_EPS);
    y1 = (int64_t)floor(ymax + DB_EPS);
    y0 = y0 < 0 ? 0 : y0;
    y1 = y1 > h - 1 ? h - 1 : y1;
    for (int64_t y = y0; y <= y1; y++) {
        double  fy = (double)y;
        double  xl = HUGE_VAL;
        double  xr = -HUGE_VAL;
        int64_t x0;
        int64_t x1;

        for (int i = 0; i < 4; i++) {
            db_point a = q[i];
            db_point b = q[(i + 1) % 4];

            if (fabs(a.y - b.y) < DB_EPS) {
                if (fabs(a.y - fy) <= DB_EPS) {
                    xl = fmin(xl, fmin(a.x, b.x));
                    xr = fmax(xr, fmax(a.x, b.x));
                }
                continue;
            }
            if ((a.y - fy) * (b.y - fy) <= 0.0) {
                double x = a.x + (fy - a.y) * (b.x - a.x) / (b.y - a.y);

                xl = fmin(xl, x);
                xr = fmax(xr, x);
            }
        }
        if (xl > xr) {
            continue;
        }
        x0 = (int64_t)ceil(xl - DB_EPS);
        x1 = (int64_t)floor(xr + DB_EPS);
        x0 = x0 < 0 ? 0 : x0;
        x1 = x1 > w - 1 ? w - 1 : x1;
        for (int64_t x = x0; x <= x1; x++) {
            sum += map[y * w + x];
            n++;
        }
    }
    return n > 0 ? sum / (double)n : 0.0;
}

/*
 * Orders q clockwise on screen (y down) starting from the top-left corner:
 * the smallest x + y, then the smallest y.
 */
static void
db_order_corners(db_point q[4])
{
    db_point tmp[4];
    double   area2 = 0.0;
    int      first = 0;

    for (int i = 0; i < 4; i++) {
        area2 += q[i].x * q[(i + 1) % 4].y - q[(i + 1) % 4].x * q[i].y;
    }
    if (area2 < 0.0) {
        db_point t = q[1];

        q[1] = q[3];
        q[3] = t;
    }
    for (int i = 1; i < 4; i++) {
        double si = q[i].x + q[i].y;
        double sf = q[first].x + q[first].y;

        if (si < sf - DB_EPS ||
            (fabs(si - sf) <= DB_EPS && q[i].y < q[first].y)) {
            first = i;
        }
    }
    for (int i = 0; i < 4; i++) {
        tmp[i] = q[(first + i) % 4];
    }
    memcpy(q, tmp, sizeof(tmp));
}

/* ---- apply ---- */

static double
db_clamp(double v, double hi)
{
    return v < 0.0 ? 0.0 : (v > hi ? hi : v);
}

/* Appends one box, growing the output arrays by doubling in the arena. */
static mi_status
db_emit(const db_state *st, mi_ctx *ctx, db_scratch *s, const db_point q[4],
        double score, mi_error *err)
{
    size_t dim = st->is_quad ? 8 : 4;
    float *row;

    if (s->n_out == s->cap) {
        size_t cap    = s->cap == 0 ? 64 : s->cap * 2;
        float *boxes  = st->host->ctx_alloc(ctx, cap * dim * sizeof(float));
        float *scores = st->host->ctx_alloc(ctx, cap * sizeof(float));

        if (boxes == NULL || scores == NULL) {
            return mi_error_set(err, MI_ENOMEM,
                                DB_NAME ": out of memory for %zu boxes", cap);
        }
        if (s->n_out > 0) {
            memcpy(boxes, s->boxes, s->n_out * dim * sizeof(float));
            memcpy(scores, s->scores, s->n_out * sizeof(float));
        }
        s->boxes  = boxes;
        s->scores = scores;
        s->cap    = cap;
    }
    row = s->boxes + s->n_out * dim;
    if (st->is_quad) {
        for (int i = 0; i < 4; i++) {
            row[2 * i]     = (float)q[i].x;
            row[2 * i + 1] = (float)q[i].y;
        }
    } else {
        double x1 = q[0].x;
        double y1 = q[0].y;
        double x2 = q[0].x;
        double y2 = q[0].y;

        for (int i = 1; i < 4; i++) {
            x1 = fmin(x1, q[i].x);
            y1 = fmin(y1, q[i].y);
            x2 = fmax(x2, q[i].x);
            y2 = fmax(y2, q[i].y);
        }
        row[0] = (float)x1;
        row[1] = (float)y1;
        row[2] = (float)x2;
        row[3] = (float)y2;
    }
    s->scores[s->n_out] = (float)score;
    s->n_out++;
    return MI_OK;
}

/*
 * Turns the blob in s->queue[0 .. n_px) (rows ymin .. ymax) into at most one
 * box, appended to the outputs.
 */
static mi_status
db_blob(const db_state *st, mi_ctx *ctx, db_scratch *s, const float *map,
        int64_t h, int64_t w, size_t n_px, int64_t ymin, int64_t ymax,
        const float *info, mi_error *err)
{
    size_t   n_pts = 0;
    size_t   n_hull;
    db_rect  r;
    db_point q[4];
    double   score;
    double   d;

    for (int64_t y = ymin; y <= ymax; y++) {
        s->row_min[y] = INT32_MAX;
        s->row_max[y] = -1;
    }
    for (size_t i = 0; i < n_px; i++) {
        int64_t y = (int64_t)(s->queue[i] / (uint32_t)w);
        int32_t x = (int32_t)(s->queue[i] % (uint32_t)w);

        s->row_min[y] = x < s->row_min[y] ? x : s->row_min[y];
        s->row_max[y] = x > s->row_max[y] ? x : s->row_max[y];
    }
    /* A blob is connected, so every row between ymin and ymax has pixels. */
    for (int64_t y = ymin; y <= ymax; y++) {
        s->pts[n_pts].x   = s->row_min[y];
        s->pts[n_pts++].y = (double)y;
        if (s->row_max[y] != s->row_min[y]) {
            s->pts[n_pts].x   = s->row_max[y];
            s->pts[n_pts++].y = (double)y;
        }
    }
    n_hull = db_hull(s->pts, n_pts, s->hull);
    if (!db_min_rect(s->hull, n_hull, &r)) {
        return MI_OK;
    }
    if (fmin(r.w, r.h) < st->min_size) {
        return MI_OK;
    }
    db_rect_corners(&r, q);
    score = db_quad_mean(map, h, w, q);
    if (score < st->box_thresh) {
        return MI_OK;
    }
    d = r.w * r.h * st->unclip_ratio / (2.0 * (r.w + r.h));
    r.w += 2.0 * d;
    r.h += 2.0 * d;
    if (fmin(r.w, r.h) < st->min_size + 2.0) {
        return MI_OK;
    }
    db_rect_corners(&r, q);
    for (int i = 0; i < 4; i++) {
        q[i].x /= info[3];
        q[i].y /= info[2];
    }
    db_order_corners(q);
    for (int i = 0; i < 4; i++) {
        q[i].x = db_clamp(q[i].x, info[1]);
        q[i].y = db_clamp(q[i].y, info[0]);
    }
    return db_emit(st, ctx, s, q, score, err);
}

/* Finds the blobs of one image and appends their boxes; *n_boxes is set. */
static mi_status
db_image(const db_state *st, mi_ctx *ctx, db_scratch *s, const float *map,
         int64_t h, int64_t w, const float *info, size_t *n_boxes,
         mi_error *err)
{
    size_t  n_pix   = (size_t)(h * w);
    size_t  before  = s->n_out;
    int64_t n_blobs = 0;
    float   thresh  = (float)st->thresh;

    for (size_t i = 0; i < n_pix; i++) {
        s->mask[i] = map[i] > thresh ? 1 : 0;
    }
    for (size_t i = 0; i < n_pix && n_blobs < st->max_candidates; i++) {
        size_t    head = 0;
        size_t    tail = 0;
        int64_t   ymin = (int64_t)(i / (size_t)w);
        int64_t   ymax = ymin;
        mi_status rc;

        if (s->mask[i] == 0) {
            continue;
        }
        n_blobs++;
        s->mask[i]       = 0;
        s->queue[tail++] = (uint32_t)i;
        while (head < tail) {
            uint32_t p = s->queue[head++];
            int64_t  y = (int64_t)(p / (uint32_t)w);
            int64_t  x = (int64_t)(p % (uint32_t)w);

            ymax = y > ymax ? y : ymax;
            for (int64_t ny = y - 1; ny <= y + 1; ny++) {
                if (ny < 0 || ny >= h) {
                    continue;
                }
                for (int64_t nx = x - 1; nx <= x + 1; nx++) {
                    size_t k = (size_t)(ny * w + nx);

                    if (nx < 0 || nx >= w || s->mask[k] == 0) {
                        continue;
                    }
                    s->mask[k]       = 0;
                    s->queue[tail++] = (uint32_t)k;
                }
            }
        }
        rc = db_blob(st, ctx, s, map, h, w, tail, ymin, ymax, info, err);
        if (rc != MI_OK) {
            return rc;
        }
    }
    *n_boxes = s->n_out - before;
    return MI_OK;
}

/* Checks one image's info: finite sizes >= 0 and ratios > 0. */
static mi_status
db_check_info(const db_state *st, const float *info, int64_t i, mi_error *err)
{
    if (!(isfinite(info[0]) && isfinite(info[1]) && info[0] >= 0.0f &&
          info[1] >= 0.0f && isfinite(info[2]) && isfinite(info[3]) &&
          info[2] > 0.0f && info[3] > 0.0f)) {
        return mi_error_set(err, MI_EINVAL,
                            DB_NAME
                            ": tensor '%s': image %lld: expected "
                            "sizes >= 0 and ratios > 0, got (%g, %g, %g, %g)",
                            st->info, (long long)i, (double)info[0],
                            (double)info[1], (double)info[2], (double)info[3]);
    }
    return MI_OK;
}

/* Checks a concrete tensor's byte size against its shape. */
static mi_status
db_check_bytes(const mi_tensor *t, mi_error *err)
{
    int64_t count = mi_shape_count(t->rank, t->shape);

    if (count < 0 || (uint64_t)count > SIZE_MAX / sizeof(float) ||
        (size_t)count * sizeof(float) != t->byte_size) {
        return mi_error_set(err, MI_EINVAL,
                            DB_NAME ": tensor '%s': %zu bytes of data do "
                                    "not match its shape",
                            t->name, t->byte_size);
    }
    return MI_OK;
}

/* Allocates the per-call scratch for maps of h x w. */
static mi_status
db_scratch_init(const db_state *st, mi_ctx *ctx, int64_t h, int64_t w,
                db_scratch *s, mi_error *err)
{
    size_t n_pix = (size_t)(h * w);
    size_t rows  = (size_t)h;

    memset(s, 0, sizeof(*s));
    if (n_pix == 0) {
        return MI_OK;
    }
    s->mask    = st->host->ctx_alloc(ctx, n_pix);
    s->queue   = st->host->ctx_alloc(ctx, n_pix * sizeof(uint32_t));
    s->row_min = st->host->ctx_alloc(ctx, rows * sizeof(int32_t));
    s->row_max = st->host->ctx_alloc(ctx, rows * sizeof(int32_t));
    s->pts     = st->host->ctx_alloc(ctx, 2 * rows * sizeof(db_point));
    s->hull    = st->host->ctx_alloc(ctx, (4 * rows + 2) * sizeof(db_point));
    if (s->mask == NULL || s->queue == NULL || s->row_min == NULL ||
        s->row_max == NULL || s->pts == NULL || s->hull == NULL) {
        return mi_error_set(err, MI_ENOMEM,
                            DB_NAME ": out of memory for a %lldx%lld map",
                            (long long)h, (long long)w);
    }
    return MI_OK;
}

static mi_status
db_apply(void *state, mi_ctx *ctx, const mi_tensor_list *in,
         mi_tensor_list *out, mi_error *err)
{
    const db_state  *st = state;
    const char      *names[MI_MAX_TENSORS];
    mi_tensor_spec   map_spec;
    mi_tensor_spec   info_spec;
    mi_tensor_list   res;
    mi_tensor       *t_boxes;
    mi_tensor       *t_scores;
    mi_tensor       *t_counts;
    const mi_tensor *map;
    const mi_tensor *info;
    db_scratch       s;
    uint32_t         mi;
    uint32_t         ii;
    int64_t          n;
    int64_t          h;
    int64_t          w;
    int64_t          shape[2];
    size_t           dim = st->is_quad ? 8 : 4;
    int32_t         *counts;
    mi_status        rc;

    for (uint32_t i = 0; i < in->n_tensors; i++) {
        names[i] = in->tensors[i].name;
    }
    if (db_pick(st, names, in->n_tensors, &mi, &ii, err) != MI_OK) {
        return MI_EINVAL;
    }
    map  = &in->tensors[mi];
    info = &in->tensors[ii];
    mi_spec_of_tensor(map, &map_spec);
    mi_spec_of_tensor(info, &info_spec);
    if (db_check_specs(&map_spec, &info_spec, &n, &h, &w, err) != MI_OK ||
        db_check_bytes(map, err) != MI_OK ||
        db_check_bytes(info, err) != MI_OK) {
        return MI_EINVAL;
    }
    if (h > 0 && w > (int64_t)UINT32_MAX / h) {
        return mi_error_set(err, MI_EINVAL,
                            DB_NAME ": tensor '%s': a %lldx%lld map is too "
                                    "large",
                            map->name, (long long)h, (long long)w);
    }
    for (int64_t i = 0; i < n; i++) {
        if (db_check_info(st, (const float *)info->data + 4 * i, i, err) !=
            MI_OK) {
            return MI_EINVAL;
        }
    }
    rc = db_scratch_init(st, ctx, h, w, &s, err);
    if (rc != MI_OK) {
        return rc;
    }

    memset(&res, 0, sizeof(res));
    for (uint32_t i = 0; i < in->n_tensors; i++) {
        if (i != mi && i != ii) {
            res.tensors[res.n_tensors++] = in->tensors[i];
        }
    }
    t_boxes  = &res.tensors[res.n_tensors];
    t_scores = &res.tensors[res.n_tensors + 1];
    t_counts = &res.tensors[res.n_tensors + 2];
    shape[0] = n;
    rc = st->host->tensor_alloc(ctx, st->counts, MI_DTYPE_INT32, 1, shape, 0,
                                t_counts, err);
    if (rc != MI_OK) {
        return rc;
    }
    counts = t_counts->data;
    for (int64_t i = 0; i < n; i++) {
        const float *m       = (const float *)map->data + i * h * w;
        size_t       n_boxes = 0;

        if (h > 0 && w > 0) {
            rc = db_image(st, ctx, &s, m, h, w,
                          (const float *)info->data + 4 * i, &n_boxes, err);
            if (rc != MI_OK) {
                return rc;
            }
        }
        if (n_boxes > (size_t)INT32_MAX) {
            return mi_error_set(err, MI_EINVAL,
                                DB_NAME ": image %lld: too many boxes",
                                (long long)i);
        }
        counts[i] = (int32_t)n_boxes;
    }

    shape[0] = (int64_t)s.n_out;
    shape[1] = (int64_t)dim;
    rc = st->host->tensor_alloc(ctx, st->boxes, MI_DTYPE_FP32, 2, shape, 0,
                                t_boxes, err);
    if (rc == MI_OK) {
        rc = st->host->tensor_alloc(ctx, st->scores, MI_DTYPE_FP32, 1, shape, 0,
                                    t_scores, err);
    }
    if (rc != MI_OK) {
        return rc;
    }
    if (s.n_out > 0) {
        memcpy(t_boxes->data, s.boxes, s.n_out * dim * sizeof(float));
        memcpy(t_scores->data, s.scores, s.n_out * sizeof(float));
    }
    res.n_tensors += 3;
    *out = res;
    return MI_OK;
}

static const mi_transform_vtbl db_vtbl = {
    .struct_size  = sizeof(mi_transform_vtbl),
    .flags        = 0,
    .create       = db_create,
    .destroy      = db_destroy,
    .infer_format = db_infer_format,
    .apply        = db_apply,
};

static const mi_plugin_desc db_postprocess_desc = {
    MI_PLUGIN_HEADER,      .name = DB_NAME,
    .version = "0.1.0",    .kind = MI_PLUGIN_TRANSFORM,
    .transform = &db_vtbl,
};

MI_BUILTIN_PLUGIN(mi_builtin_db_postprocess, &db_postprocess_desc)
