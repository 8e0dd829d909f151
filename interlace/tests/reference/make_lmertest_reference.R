#!/usr/bin/env Rscript
## make_lmertest_reference.R -- lmerTest / pbkrtest reference values for interlace's
## denominator-degrees-of-freedom tests (interlace/tests/test_satterthwaite_kr.py).
##
## Generated with: R 4.2.2 Patched (2022-11-10 r83330), lme4 1.1-31, lmerTest 3.1-3,
## pbkrtest 0.5.2, numDeriv 2016.8-1.1, jsonlite 1.8.4 (Debian packages).
##
## Run from the repository root:
##     Rscript interlace/tests/reference/make_lmertest_reference.R
##
## It (re)writes
##   interlace/tests/reference/data/penicillin_x.csv     Penicillin + a deterministic covariate x
##   interlace/tests/reference/data/crossed_factor.csv   crossed_missing.csv + a factor f of g2
##   interlace/tests/reference/data/kr_splitplot.csv     simulated, see "small unbalanced cases"
##   interlace/tests/reference/data/kr_between.csv       simulated, idem
##   interlace/tests/reference/data/kr_crossed.csv       simulated, idem
##   interlace/tests/reference/lmertest/<case>.json      one JSON of reference values per case
##
## The new CSVs follow make_lmer_reference.R's conventions (no quoting, empty = missing,
## numbers rounded to 6 decimals) and are read back before fitting.  Fits use the tight
## optimizer settings of make_lmer_reference.R (nloptwrap and bobyqa, keeping the lower
## objective), through lmerTest::lmer, so lmerTest's Hessian and Jacobian (numDeriv) are
## taken at a well-converged optimum.
##
## Small unbalanced cases (kr_*): in the real-data cases above the Kenward-Roger correction
## vcovAdj(m) - vcov(m) is at most 0.3 % of vcov(m) (exactly 0 for cake and sleepstudy), so
## they barely test it.  The kr_* cases are simulated (fixed seeds, below) to have few groups
## (6-8), unequal group sizes, between-group factors/covariates and within-group slopes, so
## that the correction is several percent of the variances and the KR df differ from
## Satterthwaite's by several percent:
##   kr_splitplot  8 subjects (3 + 5 in two arms), 3-9 visits each, y ~ trt * time + (time | id)
##   kr_between    8 groups of 2-8, a 3-level between-group factor, a within-group covariate,
##                 y ~ f + x + (1 | g)
##   kr_crossed    6 x 5 crossed groups with ~25 % of the cells missing, a between-g1 covariate
##                 z, y ~ z + x + (1 | g1) + (1 | g2)
## Each JSON also records kr_correction: diag(vcovAdj - vcov) / diag(vcov) per coefficient.
##
## JSON fields per case (jsonlite, digits = NA; vectors are arrays; NA -> null):
##   python            formula / random / method for interlace.fit, data path
##   coef_names        lme4's fixed-effect names, in order
##   satterthwaite     summary(m)$coefficients: estimate, se, df, t, p
##   kenward_roger     summary(m, ddf = "Kenward-Roger")$coefficients: se (adjusted), df, t, p
##                     (null for ML fits: lmerTest refuses KR for them)
##   vcov              vcov(m); vcov_kr: pbkrtest::vcovAdj(m) (null for ML fits)
##   kr_correction     diag(vcov_kr - vcov) / diag(vcov) (null for ML fits)
##   varpar            theta, sigma and lmerTest's vcov_varpar (2 H^-1 from numDeriv)
##   anova             type "3" and "1", each with "satterthwaite" and "kenward_roger" (null
##                     for ML): rows term, sum_sq, mean_sq, numdf, dendf, F, p, and the
##                     hypothesis matrices L per term (attr(, "hypotheses"))
##   contest           L (matrix, rows = contrasts), joint F test per ddf (contestMD), and
##                     the per-row t tests with 95% intervals (contest(joint = FALSE))
##   pairwise          (cases with a factor main effect, else null) term, labels "b-a" of every
##                     pair of its levels (later minus earlier), their contrasts L in the
##                     treatment-coded coefficients, and contest(m, L, joint = FALSE) per ddf
##                     (interlace's t_test_pairwise)

suppressPackageStartupMessages({
  library(lmerTest)
  library(pbkrtest)
  library(jsonlite)
})

if (!file.exists("interlace/tests/reference/make_lmertest_reference.R"))
  stop("run this script from the repository root")

real_dir <- "interlace/datasets/data"
sim_dir  <- "interlace/tests/reference/data"
out_dir  <- "interlace/tests/reference/lmertest"
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)

r6 <- function(x) round(x, 6)
read_csv_plain <- function(path) read.csv(path, stringsAsFactors = TRUE, na.strings = "")
write_csv_plain <- function(df, path) write.csv(df, path, row.names = FALSE, quote = FALSE, na = "")

## ---------------------------------------------------------------------------
## data
## ---------------------------------------------------------------------------
pen <- read_csv_plain(file.path(real_dir, "penicillin.csv"))
i <- seq_len(nrow(pen))
pen$x <- r6(cos(2.3 * i) + ((i %% 7) - 3) / 5)
write_csv_plain(pen, file.path(sim_dir, "penicillin_x.csv"))

cm <- read.csv(file.path(sim_dir, "crossed_missing.csv"), stringsAsFactors = FALSE, na.strings = "")
g2num <- as.integer(substring(cm$g2, 2))
cm$f <- ifelse(is.na(g2num), NA, c("a", "b", "c")[(g2num %% 3) + 1])
write_csv_plain(cm, file.path(sim_dir, "crossed_factor.csv"))

## small unbalanced cases for Kenward-Roger (see the header); simulated, rounded to 6
## decimals, written, and read back like the other CSVs
set.seed(20240522)
sp_sizes <- c(3, 9, 5, 4, 8, 6, 3, 7)
sp_trt <- c("ctl", "ctl", "ctl", "trt", "trt", "trt", "trt", "trt")
kr_splitplot <- do.call(rbind, lapply(seq_along(sp_sizes), function(i) {
  t <- sort(sample(0:9, sp_sizes[i]))
  b0 <- rnorm(1, 0, 1.2); b1 <- rnorm(1, 0, 0.35)
  data.frame(id = sprintf("s%02d", i), trt = sp_trt[i], time = t,
             y = r6(10 + 1.5 * (sp_trt[i] == "trt") + (0.6 + 0.3 * (sp_trt[i] == "trt")) * t +
                      b0 + b1 * t + rnorm(length(t), 0, 0.8)))
}))
write_csv_plain(kr_splitplot, file.path(sim_dir, "kr_splitplot.csv"))

set.seed(7303)
bt_sizes <- c(2, 8, 3, 6, 4, 7, 5, 3)
bt_f <- c("a", "a", "b", "b", "b", "c", "c", "c")
kr_between <- do.call(rbind, lapply(seq_along(bt_sizes), function(i) {
  x <- rnorm(bt_sizes[i], mean = (i - 4.5) / 4); u <- rnorm(1, 0, 0.6)
  data.frame(g = sprintf("g%d", i), f = bt_f[i], x = r6(x),
             y = r6(2 + c(a = 0, b = 0.8, c = -0.5)[[bt_f[i]]] + 0.7 * x + u + rnorm(bt_sizes[i], 0, 1)))
}))
write_csv_plain(kr_between, file.path(sim_dir, "kr_between.csv"))

set.seed(99)
kr_crossed <- expand.grid(g1 = sprintf("a%d", 1:6), g2 = sprintf("b%d", 1:5), stringsAsFactors = FALSE)
kr_crossed <- kr_crossed[runif(nrow(kr_crossed)) < 0.75, ]
cr_z <- setNames(r6(rnorm(6)), sprintf("a%d", 1:6)); cr_u1 <- rnorm(6, 0, 1); cr_u2 <- rnorm(5, 0, 0.7)
kr_crossed$z <- cr_z[kr_crossed$g1]
kr_crossed$x <- r6(rnorm(nrow(kr_crossed)))
kr_crossed$y <- r6(1 + 0.5 * kr_crossed$z + 0.4 * kr_crossed$x + cr_u1[as.integer(substring(kr_crossed$g1, 2))] +
                     cr_u2[as.integer(substring(kr_crossed$g2, 2))] + rnorm(nrow(kr_crossed), 0, 0.6))
write_csv_plain(kr_crossed, file.path(sim_dir, "kr_crossed.csv"))

data <- list(
  sleepstudy     = read_csv_plain(file.path(real_dir, "sleepstudy.csv")),
  cake           = read_csv_plain(file.path(real_dir, "cake.csv")),
  penicillin_x   = read_csv_plain(file.path(sim_dir, "penicillin_x.csv")),
  nested3        = read_csv_plain(file.path(sim_dir, "nested3.csv")),
  crossed_factor = read_csv_plain(file.path(sim_dir, "crossed_factor.csv")),
  factor_slope   = read_csv_plain(file.path(sim_dir, "factor_slope.csv")),
  kr_splitplot   = read_csv_plain(file.path(sim_dir, "kr_splitplot.csv")),
  kr_between     = read_csv_plain(file.path(sim_dir, "kr_between.csv")),
  kr_crossed     = read_csv_plain(file.path(sim_dir, "kr_crossed.csv"))
)
data$sleepstudy$Subject <- factor(data$sleepstudy$Subject)
data$cake$replicate <- factor(data$cake$replicate)
## the ordered factor of lme4's cake (polynomial contrasts); interlace: C(temperature, Poly)
data$cake$temperature <- factor(data$cake$temperature, ordered = TRUE)
paths <- c(sleepstudy = file.path(real_dir, "sleepstudy.csv"), cake = file.path(real_dir, "cake.csv"),
           penicillin_x = file.path(sim_dir, "penicillin_x.csv"), nested3 = file.path(sim_dir, "nested3.csv"),
           crossed_factor = file.path(sim_dir, "crossed_factor.csv"),
           factor_slope = file.path(sim_dir, "factor_slope.csv"),
           kr_splitplot = file.path(sim_dir, "kr_splitplot.csv"), kr_between = file.path(sim_dir, "kr_between.csv"),
           kr_crossed = file.path(sim_dir, "kr_crossed.csv"))

## ---------------------------------------------------------------------------
## cases
## ---------------------------------------------------------------------------
mk <- function(case, formula, dataname, reml, py_formula, py_random, L, pairs = NULL) {
  list(case = case, formula = formula, dataname = dataname, reml = reml,
       py_formula = py_formula, py_random = py_random, L = L, pairs = pairs)
}
cases <- list(
  mk("sleepstudy_reml", Reaction ~ Days + (Days | Subject), "sleepstudy", TRUE,
     "Reaction ~ Days", "(Days | Subject)", rbind(c(1, 0), c(1, 9))),
  mk("sleepstudy_ml", Reaction ~ Days + (Days | Subject), "sleepstudy", FALSE,
     "Reaction ~ Days", "(Days | Subject)", rbind(c(1, 0), c(1, 9))),
  mk("cake_reml", angle ~ recipe * temp + (1 | recipe:replicate), "cake", TRUE,
     "angle ~ recipe * temp", "(1 | recipe:replicate)",
     rbind(c(0, 1, 0, 0, 200, 0), c(0, 0, 1, 0, 0, 200)), pairs = "recipe"),
  mk("cake_poly_reml", angle ~ recipe * temperature + (1 | recipe:replicate), "cake", TRUE,
     "angle ~ recipe * C(temperature, Poly)", "(1 | recipe:replicate)",
     rbind(c(0, 1, rep(0, 16)), c(0, 0, 1, rep(0, 15)), c(0, 0, 0, 1, rep(0, 14)))),
  mk("penicillin_x_reml", diameter ~ x + (1 | plate) + (1 | sample), "penicillin_x", TRUE,
     "diameter ~ x", c("(1 | plate)", "(1 | sample)"), rbind(c(1, 0), c(1, 1))),
  mk("nested3_reml", y ~ x + (1 | a / b / c), "nested3", TRUE,
     "y ~ x", "(1 | a/b/c)", rbind(c(1, 0), c(1, 1))),
  mk("crossed_factor_reml", y ~ x1 * f + x2 + (1 | g1) + (1 | g2), "crossed_factor", TRUE,
     "y ~ x1 * f + x2", c("(1 | g1)", "(1 | g2)"),
     rbind(c(0, 0, 1, 0, 0, 0, 0), c(0, 0, 0, 1, 0, 0, 0)), pairs = "f"),
  mk("factor_slope_reml", y ~ f + (0 + f | g), "factor_slope", TRUE,
     "y ~ f", "(0 + f | g)", rbind(c(0, 1, 0), c(0, 0, 1))),
  ## small unbalanced cases: the treatment effect at time 0 and at time 9 (2 df)
  mk("kr_splitplot_reml", y ~ trt * time + (time | id), "kr_splitplot", TRUE,
     "y ~ trt * time", "(time | id)", rbind(c(0, 1, 0, 0), c(0, 1, 0, 9))),
  ## b - c and the within-group slope (2 df)
  mk("kr_between_reml", y ~ f + x + (1 | g), "kr_between", TRUE,
     "y ~ f + x", "(1 | g)", rbind(c(0, 1, -1, 0), c(0, 0, 0, 1)), pairs = "f"),
  mk("kr_crossed_reml", y ~ z + x + (1 | g1) + (1 | g2), "kr_crossed", TRUE,
     "y ~ z + x", c("(1 | g1)", "(1 | g2)"), rbind(c(0, 1, 0), c(0, 1, 1)))
)

## ---------------------------------------------------------------------------
## fitting and extraction
## ---------------------------------------------------------------------------
ctrl_tight <- list(
  nloptwrap = lmerControl(optimizer = "nloptwrap",
                          optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14,
                                         xtol_rel = 1e-12, maxeval = 100000)),
  bobyqa = lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 100000))
)
objective <- function(m) if (isREML(m)) REMLcrit(m) else deviance(m)
vec <- function(x) I(unname(as.vector(x)))
mat <- function(x) { x <- as.matrix(x); dimnames(x) <- NULL; x }

anova_rows <- function(a) {
  hyp <- attr(a, "hypotheses")
  lapply(seq_len(nrow(a)), function(k) {
    nm <- rownames(a)[k]
    list(term = nm, sum_sq = a[k, "Sum Sq"], mean_sq = a[k, "Mean Sq"], numdf = a[k, "NumDF"],
         dendf = a[k, "DenDF"], F = a[k, "F value"], p = a[k, "Pr(>F)"],
         L = mat(hyp[[nm]]))
  })
}
ftable <- function(x) list(sum_sq = x[["Sum Sq"]], mean_sq = x[["Mean Sq"]], numdf = x[["NumDF"]],
                           dendf = x[["DenDF"]], F = x[["F value"]], p = x[["Pr(>F)"]])
coefs <- function(cf) list(estimate = vec(cf[, "Estimate"]), se = vec(cf[, "Std. Error"]),
                           df = vec(cf[, "df"]), t = vec(cf[, "t value"]), p = vec(cf[, "Pr(>|t|)"]))

for (cs in cases) {
  cat("==", cs$case, "\n")
  dat <- data[[cs$dataname]]
  fits <- lapply(ctrl_tight, function(ct)
    eval(bquote(lmerTest::lmer(.(cs$formula), data = dat, REML = .(cs$reml), control = .(ct)))))
  obj <- vapply(fits, objective, numeric(1))
  best <- names(obj)[which.min(obj)]
  m <- fits[[best]]
  kr <- isREML(m)

  cf_s <- summary(m)$coefficients
  cf_k <- if (kr) summary(m, ddf = "Kenward-Roger")$coefficients else NULL
  an <- list()
  for (type in c("3", "1")) {
    an[[type]] <- list(
      satterthwaite = anova_rows(anova(m, type = as.integer(type))),
      kenward_roger = if (kr) anova_rows(anova(m, type = as.integer(type), ddf = "Kenward-Roger")) else NULL)
  }
  L <- cs$L
  ct <- list(L = L,
             satterthwaite = ftable(contest(m, L)),
             kenward_roger = if (kr) ftable(contest(m, L, ddf = "Kenward-Roger")) else NULL,
             rows_satterthwaite = as.list(contest(m, L, joint = FALSE)),
             rows_kenward_roger = if (kr) as.list(contest(m, L, joint = FALSE, ddf = "Kenward-Roger")) else NULL)
  ct$rows_satterthwaite <- lapply(ct$rows_satterthwaite, vec)
  if (kr) ct$rows_kenward_roger <- lapply(ct$rows_kenward_roger, vec)

  pw <- NULL
  if (!is.null(cs$pairs)) {
    lv <- levels(dat[[cs$pairs]])
    cn <- names(fixef(m))
    e <- function(l) { v <- numeric(length(cn)); k <- match(paste0(cs$pairs, l), cn); if (!is.na(k)) v[k] <- 1; v }
    ij <- do.call(rbind, lapply(seq_along(lv)[-length(lv)], function(i) cbind(i, (i + 1):length(lv))))
    Lp <- do.call(rbind, lapply(seq_len(nrow(ij)), function(r) e(lv[ij[r, 2]]) - e(lv[ij[r, 1]])))
    pw <- list(term = cs$pairs, labels = vec(paste0(lv[ij[, 2]], "-", lv[ij[, 1]])), L = Lp,
               rows_satterthwaite = lapply(as.list(contest(m, Lp, joint = FALSE)), vec),
               rows_kenward_roger = if (kr) lapply(as.list(contest(m, Lp, joint = FALSE, ddf = "Kenward-Roger")),
                                                   vec) else NULL)
  }

  out <- list(
    case = cs$case,
    r_call = paste0("lmerTest::lmer(", paste(deparse(cs$formula, width.cutoff = 500L), collapse = " "),
                    ", data = ", cs$dataname, ", REML = ", cs$reml, ")"),
    data = unname(paths[[cs$dataname]]),
    python = list(formula = cs$py_formula, random = vec(cs$py_random),
                  method = if (cs$reml) "REML" else "ML"),
    reml = cs$reml,
    nobs = nobs(m),
    coef_names = vec(names(fixef(m))),
    satterthwaite = coefs(cf_s),
    kenward_roger = if (kr) coefs(cf_k) else NULL,
    vcov = mat(vcov(m)),
    vcov_kr = if (kr) mat(vcovAdj(m)) else NULL,
    kr_correction = if (kr) vec(diag(as.matrix(vcovAdj(m)) - as.matrix(vcov(m))) / diag(as.matrix(vcov(m)))) else NULL,
    varpar = list(theta = vec(getME(m, "theta")), sigma = sigma(m), vcov_varpar = mat(m@vcov_varpar)),
    anova = an,
    contest = ct,
    pairwise = pw,
    tight_fit = list(optimizer = best, candidates = as.list(obj))
  )
  write_json(out, file.path(out_dir, paste0(cs$case, ".json")),
             digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null", null = "null")
}
