#!/usr/bin/env Rscript
## make_clmm_reference.R -- ordinal::clmm reference values for the interlace
## cumulative-link-mixed-model (CLMM) test-suite.
##
## Generated with: R 4.2.2 Patched (2022-11-10 r83330), ordinal 2022.11-16, ucminf 1.1-4.1,
## Matrix 1.5-3, jsonlite 1.8.4, lme4 1.1-31 (only for nobars()); Debian packages.  Other
## versions may give slightly different default fits.
##
## Run from the repository root:
##     Rscript interlace/tests/reference/make_clmm_reference.R
##
## It (re)writes
##   interlace/datasets/data/{wine,soup}.csv      real ordinal datasets
##   interlace/datasets/data/README.md            provenance lines are APPENDED (only lines
##                                                not already present; nothing is rewritten)
##   interlace/tests/reference/data/clmm_*.csv    simulated datasets (set.seed, deterministic)
##   interlace/tests/reference/clmm/<case>.json   one JSON of reference values per case
##
## CSV conventions are those of make_lmer_reference.R / make_glmer_reference.R: header row,
## no row names, no quoting (labels are checked for commas/quotes), missing values are
## EMPTY fields, factors written as their labels (the ordered responses too: wine "rating"
## and soup "SURENESS" are written as their labels 1..5 / 1..6), simulated numeric
## columns rounded to 6 decimals, simulated labels zero-padded.  Simulated data are
## written first and READ BACK from the CSV before fitting (the integer response is then
## turned into an ordered factor with levels 1 < 2 < ... ).  Real datasets are fitted on
## the ordinal objects themselves; the script checks that the CSV round-trips them.
##
## MODEL AND SIGN CONVENTIONS (ordinal's):
##     P(Y_i <= j | b) = F(theta_j - x_i' beta - z_i' b),   j = 1..K-1,
##     b_term ~ N(0, st_term^2) independently per level, F the inverse link (cdf):
##     logit plogis, probit pnorm, cloglog 1 - exp(-exp(x)), loglog exp(-exp(-x)),
##     cauchit pcauchy.  x_i has NO intercept column (absorbed into the thresholds).
##     A positive beta or random effect shifts mass to HIGHER categories.
##
## JSON conventions (jsonlite::write_json, digits = NA, auto_unbox = TRUE), as for lmer/glmer:
##   * every vector-valued field is a JSON array, even when of length 1; matrices are
##     arrays of rows; R NA / NULL are written as null;
##   * "python": intended interlace call {formula (fixed part), random, link, threshold,
##     nAGQ, levels (ordered response categories as strings)}.  nAGQ follows ordinal:
##     1 = Laplace, n > 1 = ADAPTIVE Gauss-Hermite quadrature with n nodes (single
##     scalar random-effect term only).
##   * THRESHOLDS: "alpha" = ordinal's threshold PARAMETERS m$alpha (its internal,
##     optimised parameterisation; names as ordinal's):
##        flexible:    alpha = the K-1 thresholds, names "1|2", "2|3", ...
##        equidistant: alpha = (threshold.1, spacing); theta_j = threshold.1 + (j-1)*spacing
##        symmetric:   K-1 even (wine: 4 thresholds): alpha = (central.1, central.2,
##                     spacing.1, ...); K-1 odd: (central, spacing.1, ...)
##     "thresholds" = the derived threshold VALUES theta = m$Theta (= tJac %*% alpha), names
##     "1|2", ...; "tJac" = ordinal's (K-1) x length(alpha) Jacobian m$tJac (rows =
##     thresholds).  For flexible thresholds alpha == thresholds and tJac = identity.
##   * "beta" = m$beta; "coefficients" = m$coefficients = c(alpha, beta) (ordinal's coef
##     order: threshold parameters, then betas).
##   * "se" = sqrt(diag(vcov(m))) for the coefficients (same order as "coefficients");
##     "vcov" = the matching block of vcov(m).  ordinal's vcov(m) also has rows for the
##     random-effect parameters ("ST1", "ST2", ...): the full matrix is "vcov_full" (with
##     "vcov_full_names").  ATTENTION, ordinal's internal scale of these rows differs:
##        one scalar random-effect term (ordinal's fast "ssr" C code; all cases but
##        crossed_10k and wine_cloglog): log(st)  -> "st_parameterization" = "log_sd"
##        Matrix-based code (several terms: crossed_10k; or useMatrix = TRUE:
##        wine_cloglog): st itself, bounded at 0  -> "st_parameterization" = "sd"
##     "se_st" gives both scales, {sd: [...], log_sd: [...]} (delta method: se(log sd) =
##     se(sd) / sd).  "se_thresholds"/"vcov_thresholds" = tJac V_alpha tJac' (the derived
##     thresholds; equal to se/vcov blocks for flexible thresholds).
##     "vcov_source": ordinal computes its Hessian by central finite differences (step
##     1e-4) of its own objective.  With the tight inner tolerance that objective is noisy
##     at ~1e-10 and the tight fit's own vcov(m) is off by up to a few % (kept as
##     "se_tight_raw", "vcov_full_tight_raw", "condHess_tight_raw").  The reported
##     se/vcov/condHess therefore come from vcov() of the model re-created by clmm at the
##     chosen tight parameters with the DEFAULT inner tolerance and no outer iteration:
##     clmm(<same call>, start = <tight parameters>, control = clmm.control(iter.max = 0))
##     (nlminb returns the start unchanged; ordinal's objective at gradTol 1e-4 is
##     smooth).  These agree with "exact_fit$se" to ~1e-4 relative.
##   * "st" = {term: [random-effect SD]} (attr(VarCorr(m)[[term]], "stddev") == m$ST);
##     "variance_components" = rows {grp, var1, var2, vcov, sdcor} as lme4's
##     as.data.frame(VarCorr()) (vcov = variance, sdcor = SD).
##   * "loglik" = logLik(m) (Laplace / AGQ approximation as reported by ordinal);
##     "objective" = -loglik (what ordinal minimises), "minus2loglik" = -2 * loglik;
##     "aic", "bic", "df" = AIC(m), BIC(m), attr(logLik(m), "df") (= number of threshold
##     parameters + betas + random-effect SDs).
##   * "condHess" = summary()$condHess = max/min |eigenvalue| of ordinal's Hessian
##     (on ordinal's internal parameter scale, see "st_parameterization"; same model
##     object as the vcov, see "vcov_source");
##     "cond_H" = ordinal's printed string summary(m)$info$cond.H; "max_grad" = max
##     |m$gradient| at the optimum (ordinal's "max.grad").
##   * "ranef" = {term: {levels, values, condsd}}: values = ranef(m)[[term]] (conditional
##     modes of b on the SD scale, same sign convention as above), condsd =
##     sqrt(condVar(m)[[term]]).
##   * "fitted_first10" = fitted(m)[1:10] = m$fitted.values: the probability of the
##     OBSERVED category at the conditional modes of the random effects.
##   * "predict": newdata = first 5 data rows (model columns only) + one row with unseen
##     grouping level(s) "NEW".  clmm has no newdata predict(), so the values are computed
##     here from m$Theta and beta: "linear_predictor" = x' beta (no thresholds, random
##     effects 0), "cumprobs" = F(theta_j - x' beta) (rows x (K-1)), "probs" =
##     per-category probabilities (rows x K, columns = "categories"), i.e. the random
##     effects set to 0 (NOT the population-averaged probability);
##     "linear_predictor_with_re"/"probs_with_re" add the conditional modes ranef(m) (0
##     for an unseen level).  For the first 5 rows probs_with_re at the observed
##     category reproduces fitted(m) (checked).
##   * "r_seconds" = elapsed seconds (system.time) of the DEFAULT-control fit (machine
##     dependent!); "tight_fit$seconds" gives the tight fits' times.
##   * "warnings": R warnings/messages raised by the chosen tight fit; repeated messages
##     are reported once with a count (ordinal's trailing "at iteration N" is dropped).
##
## TIGHT FITS.  clmm.control(method = c("nlminb", "ucminf"), ..., maxIter = 50, gradTol =
## 1e-4, ...): "..." goes to the OUTER optimiser, gradTol/maxIter control ordinal's INNER
## Newton iterations for the conditional modes.  NB clmm drops "grad"/"grtol" when
## method = "nlminb", so clmm.control(grtol = 1e-10, method = "nlminb") is IDENTICAL to
## the default fit (checked: "default_fit$grtol_nlminb_identical").  Tightening needs the
## inner gradTol: at the default 1e-4 ordinal's objective is biased by ~1e-6 .. 1e-5
## (Laplace/AGQ evaluated at unconverged modes).  Candidates (names in "tight_fit"):
##   nlminb_g1e-10:  clmm.control(method = "nlminb", rel.tol = 1e-14, x.tol = 1e-14,
##                   eval.max = 1e4, iter.max = 1e4, gradTol = 1e-10, maxIter = 200)
##   nlminb_g1e-08:  the same with gradTol = 1e-8
##   ucminf_g1e-10:  clmm.control(method = "ucminf", grtol = 1e-10, xtol = 1e-14,
##                   maxeval = 1e4, gradTol = 1e-10, maxIter = 200)  (central gradient)
##   nlminb_g1e-08_start_exact: nlminb_g1e-08 started (clmm's start =) at "exact_fit"'s
##                   optimum (see below)
## (Matrix-based code -- crossed_10k and wine_cloglog, see below: only the gradTol = 1e-8
## nlminb candidates; ordinal cannot use ucminf there, and gradTol = 1e-10 makes its
## R-level inner loop run into its iteration limit, 165 s instead of 37 s for
## crossed_10k.)  The chosen candidate has the lowest "objective_exact"; parameters of
## all candidates are in "tight_fit".  With gradTol <= 1e-8 ordinal's inner Newton often
## stalls at rounding level ("step factor reduced below minimum when updating the random
## effects", "iteration limit reached when updating the random effects"): harmless for
## the values (ordinal's objective at the chosen parameters agrees with the independent
## "objective_exact" to ~1e-10, see "laplace_check"), but it makes ordinal's objective
## noisy at ~1e-10, so nlminb/ucminf alone cannot pin the parameters better than ~1e-5
## and ordinal's finite-difference Hessian (step 1e-4) then carries up to a few % noise
## (see "vcov_source").  These warnings are recorded, not suppressed.
##
## CLOGLOG / LOGLOG SWAP IN ordinal 2022.11-16 (found while writing this script): with ONE
## scalar random-effect term clmm uses its fast C code ("ssr"), in which link = "cloglog"
## evaluates F(x) = exp(-exp(-x)) (the loglog cdf) and link = "loglog" evaluates
## 1 - exp(-exp(x)): the two are swapped (the fitted values match the other cdf exactly;
## clm and clmm's Matrix-based code use the documented cdfs).  wine_cloglog is therefore
## fitted with control = clmm.control(useMatrix = TRUE) (same model, Matrix-based code,
## random-effect parameter = sd), which fits the documented cloglog model; the result of
## the plain call is stored in "ordinal_ssr_path" together with the exact objective of the
## LOGLOG model at its parameters, which reproduces its logLik.
##
## EXACT OBJECTIVE ("objective_exact", "exact_fit", "laplace_check"): an independent R
## implementation (exact_objective() below, written from the model definition) of the
## same approximation: conditional modes of the standardised random effects u (b = st*u)
## by Newton iteration to max|step| < 1e-13, then
##     Laplace (nAGQ = 1): -loglik = -sum log p(y|u) + |u|^2/2 + log det(H)/2,
##         H = Lambda Z'WZ Lambda + I with W the OBSERVED information weights
##         ((f1-f2)/p)^2 - (f1'-f2')/p (as ordinal uses);
##     AGQ (nAGQ = n > 1, one term): per group, n-node Gauss-Hermite centred at the mode
##         with scale sqrt(2/H_gg) (nodes by Golub-Welsch).
## ordinal's reported objective uses modes converged to gradTol and, in the single-term
## code, a Hessian lagging one Newton iterate.  "objective_exact" = this objective at the
## reported parameters (also for the default fit).  "exact_fit" = the minimum of this
## objective (nlminb with 4-point central-difference gradients, step 1e-3, then Newton
## polishing with a fixed finite-difference Hessian), with its parameters, SEs ("se",
## "vcov_full" from the finite-difference Hessian of the exact objective, ordinal's
## parameter scale), "condHess", and conditional modes/SDs.  It is a tighter target than
## ordinal's own output: compare ordinal-level quantities (alpha, beta, st, se) with
## rtol ~1e-4 and loglik with atol ~1e-6 against the main fields, or tighter (rtol
## ~1e-6, atol ~1e-8) against "exact_fit".
##
## Extra fields: "objective_exact", "laplace_check" (objective_exact - ordinal's objective
## at the same parameters), "exact_fit", "default_fit" (default clmm.control(): alpha,
## beta, st, loglik, objective, objective_exact, optimiser message, warnings),
## "tight_fit", "data_columns", "notes", "ordinal_ssr_path" (wine_cloglog only, see above).

suppressPackageStartupMessages({
  library(ordinal)
  library(Matrix)
  library(jsonlite)
})

if (!file.exists("interlace/tests/reference/make_clmm_reference.R"))
  stop("run this script from the repository root")

real_dir <- "interlace/datasets/data"
sim_dir  <- "interlace/tests/reference/data"
out_dir  <- "interlace/tests/reference/clmm"
for (d in c(real_dir, sim_dir, out_dir)) dir.create(d, recursive = TRUE, showWarnings = FALSE)

ordinal_version <- packageDescription("ordinal")$Version   # e.g. "2022.11-16"

## ---------------------------------------------------------------------------
## CSV helpers (same conventions as make_lmer_reference.R / make_glmer_reference.R)
## ---------------------------------------------------------------------------
source("interlace/tests/reference/reference_helpers.R")

## ---------------------------------------------------------------------------
## 1. real datasets
## ---------------------------------------------------------------------------
real <- list(
  wine = ordinal::wine,
  soup = ordinal::soup[, c("RESP", "PROD", "PRODID", "SURENESS", "DAY")]
)
real_desc <- list(
  wine = paste("response = bitterness score on a 0-100 continuous scale; rating = grouped bitterness",
               "(ordered factor 1 < 2 < 3 < 4 < 5, label); temp = serving temperature (factor cold/warm);",
               "contact = juice-skin contact (factor no/yes); bottle = bottle (factor 1-8); judge = judge (factor 1-9)"),
  soup = paste("(subset of ordinal's columns) RESP = respondent (factor, 185 levels); PROD = product",
               "(factor Ref/Test); PRODID = product id (factor 1-6: reference and five test variants);",
               "SURENESS = A-not A rating with sureness (ordered factor 1 < ... < 6, label; 1 = reference, sure ..",
               "6 = not reference, sure); DAY = test day (factor 1-2)")
)
real_rname <- c(wine = "wine", soup = "soup")

write_real_datasets(real, real_desc, real_rname, real_dir, "make_clmm_reference.R", "ordinal", ordinal_version)

## ---------------------------------------------------------------------------
## 2. simulated dataset (written, then read back from CSV)
## ---------------------------------------------------------------------------

## crossed_10k: 100 judges x 50 items fully crossed, 2 replicates per cell (10,000 rows),
## latent logistic model y* = 0.8 x + f-effect (a 0, b 0.5, c -0.4) + u_judge (sd 0.8)
## + v_item (sd 0.5) + logistic noise, cut at (-1.5, -0.3, 0.7, 1.9) into 5 categories.
set.seed(20240801)
{
  nj <- 100; ni <- 50; nrep <- 2
  grid <- expand.grid(rep = seq_len(nrep), item = seq_len(ni), judge = seq_len(nj))
  n <- nrow(grid)
  uj <- rnorm(nj, 0, 0.8); vi <- rnorm(ni, 0, 0.5)
  x <- r6(rnorm(n))
  f <- sample(c("a", "b", "c"), n, replace = TRUE)
  eta <- 0.8 * x + c(a = 0, b = 0.5, c = -0.4)[f] + uj[grid$judge] + vi[grid$item]
  ystar <- eta + rlogis(n)
  y <- cut(ystar, c(-Inf, -1.5, -0.3, 0.7, 1.9, Inf), labels = FALSE)
  stopifnot(all(tabulate(y, 5) > 0))
  d <- data.frame(y = y, x = x, f = f, judge = lab("j", grid$judge, 3), item = lab("i", grid$item, 2))
  write_csv_plain(d, file.path(sim_dir, "clmm_crossed.csv"))
}
sim <- list(clmm_crossed = read_csv_plain(file.path(sim_dir, "clmm_crossed.csv")))
sim$clmm_crossed$y <- factor(sim$clmm_crossed$y, levels = 1:5, ordered = TRUE)
stopifnot(nrow(sim$clmm_crossed) == 10000L, !anyNA(sim$clmm_crossed))

## ---------------------------------------------------------------------------
## 3. case definitions
## ---------------------------------------------------------------------------
mk <- function(case, formula, dataname, df, data_path, py_formula, py_random, newrows,
               link = "logit", threshold = "flexible", nAGQ = 1L, use_matrix = FALSE,
               notes = character()) {
  list(case = case, formula = formula, dataname = dataname, df = df, data_path = data_path,
       py_formula = py_formula, py_random = py_random, newrows = newrows, link = link,
       threshold = threshold, nAGQ = as.integer(nAGQ), use_matrix = use_matrix, notes = notes)
}
rp <- function(nm) file.path(real_dir, paste0(nm, ".csv"))
sp <- function(nm) file.path(sim_dir, paste0(nm, ".csv"))

wine_f <- rating ~ temp + contact + (1 | judge)
wine_new <- list(data.frame(temp = "warm", contact = "yes", judge = "NEW"))
wine_args <- list(formula = wine_f, dataname = "wine", df = real$wine, data_path = rp("wine"),
                  py_formula = "rating ~ temp + contact", py_random = "(1 | judge)", newrows = wine_new)
wine_case <- function(case, ...) do.call(mk, c(list(case = case), wine_args, list(...)))

cases <- list(
  wine_case("wine_logit"),
  wine_case("wine_probit", link = "probit"),
  wine_case("wine_agq10", nAGQ = 10L,
            notes = "nAGQ = 10: adaptive Gauss-Hermite quadrature (ordinal: positive nAGQ = adaptive, negative = non-adaptive)"),
  wine_case("wine_equidistant", threshold = "equidistant",
            notes = "alpha = (threshold.1, spacing); thresholds theta_j = threshold.1 + (j - 1) * spacing"),
  wine_case("wine_symmetric", threshold = "symmetric",
            notes = c("4 thresholds (even): alpha = (central.1, central.2, spacing.1);",
                      "thresholds = (central.1 - spacing.1, central.1, central.2, central.2 + spacing.1) (see tJac)")),
  wine_case("wine_cloglog", link = "cloglog", use_matrix = TRUE,
            notes = c("cloglog: F(x) = 1 - exp(-exp(x)) applied to P(Y <= j) = F(theta_j - x'beta - b)",
                      "fitted with clmm.control(useMatrix = TRUE): ordinal 2022.11-16's single-term C code swaps cloglog and loglog (see ordinal_ssr_path)",
                      "Matrix-based code: random-effect parameter on the sd scale (st_parameterization = sd)")),
  mk("soup", SURENESS ~ PROD + (1 | RESP), "soup", real$soup, rp("soup"),
     "SURENESS ~ PROD", "(1 | RESP)", list(data.frame(PROD = "Test", RESP = "NEW"))),
  mk("crossed_10k", y ~ x + f + (1 | judge) + (1 | item), "clmm_crossed", sim$clmm_crossed,
     sp("clmm_crossed"), "y ~ x + f", c("(1 | judge)", "(1 | item)"),
     list(data.frame(x = 0.5, f = "b", judge = "NEW", item = "NEW")),
     notes = c("simulated: 100 judges x 50 items fully crossed, 2 replicates per cell; y read back from the CSV as ordered factor 1 < ... < 5",
               "two random-effect terms: ordinal uses its Matrix-based code, whose internal random-effect parameters are the SDs (st_parameterization = sd)",
               "r_seconds: default fit; ordinal's finite-difference Hessian (Hess = TRUE) is part of the timing"))
)

## ---------------------------------------------------------------------------
## 4. link functions (cdf F, density f, density derivative f') -- for predictions and
##    the independent exact objective
## ---------------------------------------------------------------------------
link_fns <- function(link) {
  fin <- function(x, v) { v[!is.finite(x)] <- 0; v }   # f, f' are 0 at +-Inf
  switch(link,
    logit = list(
      p = function(x) plogis(x), q = function(x) plogis(x, lower.tail = FALSE),
      d = function(x) fin(x, dlogis(x)),
      g = function(x) fin(x, dlogis(x) * (plogis(x, lower.tail = FALSE) - plogis(x)))),
    probit = list(
      p = function(x) pnorm(x), q = function(x) pnorm(x, lower.tail = FALSE),
      d = function(x) fin(x, dnorm(x)),
      g = function(x) fin(x, -x * dnorm(x))),
    cloglog = list(                                   # F(x) = 1 - exp(-exp(x))
      p = function(x) -expm1(-exp(x)), q = function(x) exp(-exp(x)),
      d = function(x) fin(x, exp(x - exp(x))),
      g = function(x) fin(x, exp(x - exp(x)) * (1 - exp(x)))),
    loglog = list(                                    # F(x) = exp(-exp(-x))
      p = function(x) exp(-exp(-x)), q = function(x) -expm1(-exp(-x)),
      d = function(x) fin(x, exp(-x - exp(-x))),
      g = function(x) fin(x, exp(-x - exp(-x)) * (exp(-x) - 1))),
    cauchit = list(
      p = function(x) pcauchy(x), q = function(x) pcauchy(x, lower.tail = FALSE),
      d = function(x) fin(x, dcauchy(x)),
      g = function(x) fin(x, -2 * x / (pi * (1 + x^2)^2))),
    stop("unknown link ", link))
}

## P(theta_{y-1} < Y* <= theta_y) with the upper tail used when both arguments are > 0
cell_prob <- function(lf, e1, e2) {
  up <- e2 > 0
  p <- lf$p(e1) - lf$p(e2)
  p[up] <- lf$q(e2[up]) - lf$q(e1[up])
  p
}

## Gauss-Hermite nodes/weights for int exp(-x^2) g(x) dx (Golub-Welsch)
gauss_hermite <- function(n) {
  if (n == 1L) return(list(nodes = 0, weights = sqrt(pi)))
  J <- matrix(0, n, n)
  off <- sqrt(seq_len(n - 1) / 2)
  J[cbind(1:(n - 1), 2:n)] <- off
  J[cbind(2:n, 1:(n - 1))] <- off
  e <- eigen(J, symmetric = TRUE)
  o <- order(e$values)
  list(nodes = e$values[o], weights = sqrt(pi) * e$vectors[1, o]^2)
}

## ---------------------------------------------------------------------------
## 5. independent exact objective (see header)
## ---------------------------------------------------------------------------
## setup from the data and the fitted clmm (for tJac, term order and level checks)
exact_setup <- function(cs, m) {
  dat <- cs$df
  fixed_rhs <- reformulate(attr(terms(lme4::nobars(cs$formula)), "term.labels"))
  X <- model.matrix(fixed_rhs, dat)[, -1, drop = FALSE]
  stopifnot(identical(colnames(X), names(m$beta)))
  yname <- all.vars(cs$formula)[1]
  y <- as.integer(dat[[yname]])
  K <- nlevels(dat[[yname]])
  terms_ <- names(m$ST)
  gf <- lapply(terms_, function(g) droplevels(factor(dat[[g]])))
  names(gf) <- terms_
  re <- ranef(m)
  for (g in terms_) stopifnot(identical(levels(gf[[g]]), rownames(re[[g]])))
  nlev <- vapply(gf, nlevels, integer(1))
  Z <- do.call(cbind, lapply(gf, function(g) sparseMatrix(i = seq_along(g), j = as.integer(g), x = 1,
                                                          dims = c(length(g), nlevels(g)))))
  Z <- as(Z, "CsparseMatrix")
  list(X = X, y = y, K = K, tJac = m$tJac, nalpha = length(m$alpha), nbeta = length(m$beta),
       terms = terms_, gf = gf, nlev = nlev, q = sum(nlev), Z = Z, Zt = t(Z),
       lf = link_fns(cs$link), nAGQ = cs$nAGQ,
       ghq = if (cs$nAGQ > 1L) gauss_hermite(cs$nAGQ) else NULL,
       term_of = rep(seq_along(nlev), nlev), grp = as.integer(gf[[1]]))
}

## par = c(alpha, beta, log(st)); returns -loglik (Laplace or AGQ) and, if detail = TRUE,
## the conditional modes and H
exact_objective <- function(S, par, detail = FALSE) {
  na <- S$nalpha; nb <- S$nbeta
  alpha <- par[seq_len(na)]
  beta <- par[na + seq_len(nb)]
  st <- exp(par[na + nb + seq_along(S$nlev)])
  theta <- c(-Inf, as.vector(S$tJac %*% alpha), Inf)
  eta <- if (nb) as.vector(S$X %*% beta) else rep(0, length(S$y))
  o1 <- theta[S$y + 1L] - eta            # upper
  o2 <- theta[S$y] - eta                 # lower
  lam <- st[S$term_of]
  lf <- S$lf
  state <- function(u) {
    b <- as.vector(S$Z %*% (lam * u))
    e1 <- o1 - b; e2 <- o2 - b
    p <- cell_prob(lf, e1, e2)
    list(e1 = e1, e2 = e2, p = p, h = -sum(log(p)) + sum(u^2) / 2)
  }
  derivs <- function(s, u) {
    f1 <- lf$d(s$e1); f2 <- lf$d(s$e2)
    r <- (f1 - f2) / s$p
    w <- r^2 - (lf$g(s$e1) - lf$g(s$e2)) / s$p
    grad <- lam * as.vector(S$Zt %*% r) + u
    ZtWZ <- as.matrix(crossprod(S$Z, Diagonal(x = w) %*% S$Z))
    H <- ZtWZ * outer(lam, lam)
    diag(H) <- diag(H) + 1
    list(grad = grad, H = H)
  }
  u <- rep(0, S$q)
  s <- state(u)
  if (!is.finite(s$h)) return(if (detail) list(value = Inf) else Inf)
  it <- 0L
  repeat {
    dv <- derivs(s, u)
    R <- chol(dv$H)
    step <- as.vector(backsolve(R, forwardsolve(t(R), dv$grad)))
    if (max(abs(step)) < 1e-13 || it >= 100L) break
    it <- it + 1L
    fac <- 1
    repeat {
      un <- u - fac * step
      sn <- state(un)
      if (is.finite(sn$h) && sn$h <= s$h + 1e-12 * (1 + abs(s$h))) break
      fac <- fac / 2
      if (fac < 1e-10) break
    }
    if (fac < 1e-10) break
    u <- un; s <- sn
  }
  ## dv/R belong to the final u
  if (S$nAGQ <= 1L) {
    val <- s$h + sum(log(diag(R)))      # log det(H) / 2
  } else {
    stopifnot(length(S$nlev) == 1L)
    D <- diag(dv$H)
    K <- sqrt(2 / D)
    val <- 0
    for (i in seq_len(S$q)) {
      idx <- which(S$grp == i)
      lt <- vapply(seq_along(S$ghq$nodes), function(h) {
        uh <- u[i] + K[i] * S$ghq$nodes[h]
        b <- lam[i] * uh
        p <- cell_prob(lf, o1[idx] - b, o2[idx] - b)
        sum(log(p)) + log(S$ghq$weights[h]) + S$ghq$nodes[h]^2 + dnorm(uh, log = TRUE)
      }, numeric(1))
      mx <- max(lt)
      val <- val - (mx + log(sum(exp(lt - mx))) + log(K[i]))
    }
  }
  if (!detail) return(val)
  list(value = val, u = u, H = dv$H, st = st, lam = lam, iterations = it,
       max_abs_grad_u = max(abs(dv$grad)))
}

## 4-point central-difference gradient
grad4 <- function(fn, p, h = 1e-3) {
  vapply(seq_along(p), function(i) {
    e <- rep(0, length(p)); e[i] <- h
    (-fn(p + 2 * e) + 8 * fn(p + e) - 8 * fn(p - e) + fn(p - 2 * e)) / (12 * h)
  }, numeric(1))
}
## Hessian: central differences of grad4, symmetrised
hess_fd <- function(fn, p, h = 1e-3) {
  k <- length(p)
  H <- matrix(0, k, k)
  for (j in seq_len(k)) {
    e <- rep(0, k); e[j] <- h
    H[, j] <- (grad4(fn, p + e) - grad4(fn, p - e)) / (2 * h)
  }
  (H + t(H)) / 2
}

## ordinal's parameter vector (log sd for single-term "ssr" fits, sd otherwise) <-> ours
ord_par_of <- function(m) c(m$coefficients, log(unlist(lapply(m$ST, as.vector))))
is_ssr <- function(cs) length(cs$py_random) == 1L && !isTRUE(cs$use_matrix)

exact_minimise <- function(S, p0) {
  fn <- function(p) exact_objective(S, p)
  gr <- function(p) grad4(fn, p)
  opt <- nlminb(p0, fn, gr, control = list(rel.tol = 1e-15, x.tol = 1e-15, eval.max = 2000, iter.max = 1000))
  p <- opt$par; f <- fn(p)
  nnewton <- 0L
  H <- hess_fd(fn, p)                   # kept fixed: the polishing starts near the optimum
  for (k in 1:8) {
    g <- gr(p)
    step <- solve(H, g)
    if (max(abs(step)) < 1e-11) break
    pn <- p - step; fnew <- fn(pn)
    if (!(fnew <= f + 1e-12 * abs(f))) break
    p <- pn; f <- fnew; nnewton <- nnewton + 1L
  }
  list(par = p, value = f, grad = gr(p), nlminb_message = opt$message, newton_steps = nnewton)
}

## ---------------------------------------------------------------------------
## 6. fitting
## ---------------------------------------------------------------------------
capture <- function(expr) {
  msgs <- character()
  tm <- system.time(
    val <- withCallingHandlers(expr,
      warning = function(w) { msgs <<- c(msgs, paste("warning:", conditionMessage(w)))
                              invokeRestart("muffleWarning") },
      message = function(m) { msgs <<- c(msgs, paste("message:", trimws(conditionMessage(m))))
                              invokeRestart("muffleMessage") }))
  list(value = val, msgs = msgs, seconds = round(unname(tm[["elapsed"]]), 3))
}
## repeated messages once, with a count; ordinal's "\n  at iteration N" dropped
dedupe_msgs <- function(msgs) {
  if (!length(msgs)) return(character())
  s <- trimws(gsub("\\s+", " ", sub("\\n\\s*at iteration [0-9]+\\s*$", "", msgs)))
  tab <- table(factor(s, levels = unique(s)))
  ifelse(tab > 1, sprintf("%s [%d times]", names(tab), as.integer(tab)), names(tab))
}

ctrl_default <- clmm.control()
ctrl_brief <- clmm.control(grtol = 1e-10, method = "nlminb")
ctrl_tight <- list(
  "nlminb_g1e-10" = clmm.control(method = "nlminb", rel.tol = 1e-14, x.tol = 1e-14, eval.max = 1e4,
                                 iter.max = 1e4, gradTol = 1e-10, maxIter = 200),
  "nlminb_g1e-08" = clmm.control(method = "nlminb", rel.tol = 1e-14, x.tol = 1e-14, eval.max = 1e4,
                                 iter.max = 1e4, gradTol = 1e-8, maxIter = 200),
  "ucminf_g1e-10" = clmm.control(method = "ucminf", grtol = 1e-10, xtol = 1e-14, maxeval = 1e4,
                                 gradTol = 1e-10, maxIter = 200)
)
ctrl_desc <- list(
  "nlminb_g1e-10" = "clmm.control(method = \"nlminb\", rel.tol = 1e-14, x.tol = 1e-14, eval.max = 1e4, iter.max = 1e4, gradTol = 1e-10, maxIter = 200)",
  "nlminb_g1e-08" = "clmm.control(method = \"nlminb\", rel.tol = 1e-14, x.tol = 1e-14, eval.max = 1e4, iter.max = 1e4, gradTol = 1e-8, maxIter = 200)",
  "ucminf_g1e-10" = "clmm.control(method = \"ucminf\", grtol = 1e-10, xtol = 1e-14, maxeval = 1e4, gradTol = 1e-10, maxIter = 200)",
  "nlminb_g1e-08_start_exact" = "clmm.control(method = \"nlminb\", rel.tol = 1e-14, x.tol = 1e-14, eval.max = 1e4, iter.max = 1e4, gradTol = 1e-8, maxIter = 200), start = exact_fit optimum"
)

fit_one <- function(cs, control, start = NULL) {
  dat <- cs$df
  if (isTRUE(cs$use_matrix)) control$useMatrix <- TRUE
  cl <- bquote(clmm(.(cs$formula), data = dat, link = .(cs$link), threshold = .(cs$threshold),
                    nAGQ = .(cs$nAGQ), control = .(control)))
  if (!is.null(start)) cl$start <- start
  capture(eval(cl))
}

## clmm's start= : c(alpha, beta, log sd) for one term, list(c(alpha, beta), sd) otherwise
start_of <- function(cs, S, p) {
  k <- S$nalpha + S$nbeta
  if (is_ssr(cs)) p else list(p[seq_len(k)], exp(p[-seq_len(k)]))
}

r_call_string <- function(cs) {
  f <- paste(deparse(cs$formula, width.cutoff = 500L), collapse = " ")
  s <- paste0("clmm(", f, ", data = ", cs$dataname)
  if (cs$link != "logit") s <- paste0(s, ", link = \"", cs$link, "\"")
  if (cs$threshold != "flexible") s <- paste0(s, ", threshold = \"", cs$threshold, "\"")
  if (cs$nAGQ != 1L) s <- paste0(s, ", nAGQ = ", cs$nAGQ)
  if (isTRUE(cs$use_matrix)) s <- paste0(s, ", control = clmm.control(useMatrix = TRUE)")
  paste0(s, ")")
}

first10 <- function(x) vec(unname(x)[seq_len(min(10L, length(x)))])
named <- function(x) list(names = vec(names(x)), values = vec(x))
st_of <- function(m) unlist(lapply(m$ST, as.vector))

## optional: CLMM_CASES="wine_logit,soup" runs a subset (development only)
only <- Sys.getenv("CLMM_CASES")
if (nzchar(only)) cases <- Filter(function(cs) cs$case %in% strsplit(only, ",")[[1]], cases)

summary_rows <- list()

for (cs in cases) {
  cat("==", cs$case, "\n")
  dat <- cs$df
  ssr <- is_ssr(cs)

  ## default fit (timed) and the brief's grtol control (identical for nlminb)
  fd <- fit_one(cs, ctrl_default)
  m_def <- fd$value
  brief_identical <- NA
  if (ssr) {
    fb <- fit_one(cs, ctrl_brief)
    brief_identical <- identical(fb$value$coefficients, m_def$coefficients) &&
      identical(fb$value$logLik, m_def$logLik)
  }
  S <- exact_setup(cs, m_def)

  ## tight candidates
  cand_names <- if (ssr) names(ctrl_tight) else "nlminb_g1e-08"
  tight <- lapply(setNames(cand_names, cand_names), function(nm)
    tryCatch(fit_one(cs, ctrl_tight[[nm]]),
             error = function(e) list(value = NULL, msgs = paste("error:", conditionMessage(e)),
                                      seconds = NA_real_)))
  ok <- vapply(tight, function(f) !is.null(f$value), logical(1))
  stopifnot(any(ok))
  ## exact optimum, started from the best plain tight candidate
  texact0 <- vapply(tight, function(f) if (is.null(f$value)) NA_real_ else exact_objective(S, ord_par_of(f$value)),
                    numeric(1))
  ex <- exact_minimise(S, ord_par_of(tight[[which.min(texact0)]]$value))
  ## ordinal restarted at the exact optimum
  tight[["nlminb_g1e-08_start_exact"]] <-
    tryCatch(fit_one(cs, ctrl_tight[["nlminb_g1e-08"]], start = start_of(cs, S, ex$par)),
             error = function(e) list(value = NULL, msgs = paste("error:", conditionMessage(e)),
                                      seconds = NA_real_))
  tobj <- vapply(tight, function(f) if (is.null(f$value)) NA_real_ else -f$value$logLik, numeric(1))
  texact <- vapply(tight, function(f) if (is.null(f$value)) NA_real_ else exact_objective(S, ord_par_of(f$value)),
                   numeric(1))
  best <- names(which.min(texact))
  m <- tight[[best]]$value
  msgs <- tight[[best]]$msgs
  if (length(fd$msgs)) cat("  default fit:", dedupe_msgs(fd$msgs), sep = "\n    ")
  for (nm in names(tight)) if (length(tight[[nm]]$msgs))
    cat(sprintf("  tight fit (%s):", nm), dedupe_msgs(tight[[nm]]$msgs), sep = "\n    ")
  stopifnot(ex$value <= min(texact, na.rm = TRUE) + 1e-9)
  def_exact <- exact_objective(S, ord_par_of(m_def))

  ## wine_cloglog: the plain single-term call (C code, cloglog/loglog swapped)
  ssr_path <- NA
  if (isTRUE(cs$use_matrix) && length(cs$py_random) == 1L) {
    cs_ssr <- cs; cs_ssr$use_matrix <- FALSE
    fs <- fit_one(cs_ssr, ctrl_default)
    ft <- fit_one(cs_ssr, ctrl_tight[["nlminb_g1e-08"]])
    S_ll <- S; S_ll$lf <- link_fns("loglog")
    ssr_path <- list(
      r_call = sub(", control = clmm.control\\(useMatrix = TRUE\\)", "", r_call_string(cs)),
      control = "clmm.control() (defaults)",
      alpha = vec(fs$value$alpha), beta = vec(fs$value$beta), st = vec(st_of(fs$value)),
      loglik = fs$value$logLik,
      objective_exact_cloglog = exact_objective(S, ord_par_of(fs$value)),
      objective_exact_loglog = exact_objective(S_ll, ord_par_of(fs$value)),
      warnings = vec(dedupe_msgs(fs$msgs)),
      tight = list(control = ctrl_desc[["nlminb_g1e-08"]],
                   alpha = vec(ft$value$alpha), beta = vec(ft$value$beta), st = vec(st_of(ft$value)),
                   loglik = ft$value$logLik,
                   objective_exact_cloglog = exact_objective(S, ord_par_of(ft$value)),
                   objective_exact_loglog = exact_objective(S_ll, ord_par_of(ft$value))),
      note = paste("ordinal's single-term code with link = 'cloglog': its -logLik matches the exact LOGLOG",
                   "objective (objective_exact_loglog), not the cloglog one: to ~1e-8 for the tight fit; the",
                   "default fit's logLik carries ordinal's default inner-tolerance bias (~1.6e-4 here)"))
    cat(sprintf("  ssr path (default, tight): -logLik %.10f %.10f; exact loglog %.10f %.10f; exact cloglog %.10f\n",
                -fs$value$logLik, -ft$value$logLik, ssr_path$objective_exact_loglog,
                ssr_path$tight$objective_exact_loglog, ssr_path$objective_exact_cloglog))
    stopifnot(abs(ssr_path$objective_exact_loglog + fs$value$logLik) < 1e-3,
              abs(ssr_path$tight$objective_exact_loglog + ft$value$logLik) < 1e-6)
  }

  ## --- ordinal quantities of the chosen fit.  vcov: ordinal's vcov() of the model
  ## re-created at the chosen parameters with the DEFAULT inner tolerance and no outer
  ## iterations (see header, "vcov_source"); the tight fit's own vcov is kept as *_tight_raw
  fa <- fit_one(cs, clmm.control(iter.max = 0), start = start_of(cs, S, ord_par_of(m)))
  m_at <- fa$value
  stopifnot(max(abs(ord_par_of(m_at) - ord_par_of(m))) == 0)
  sm <- summary(m_at)
  sm_raw <- summary(m)
  V <- vcov(m_at)
  V_raw <- vcov(m)
  stopifnot(identical(dimnames(V), dimnames(V_raw)))
  stopifnot(identical(rownames(V), rownames(m$Hessian)))
  nco <- length(m$coefficients)
  stopifnot(nrow(V) == nco + length(m$ST))    # no random-effect parameter on the boundary
  Vc <- V[1:nco, 1:nco, drop = FALSE]
  Va <- Vc[seq_along(m$alpha), seq_along(m$alpha), drop = FALSE]
  Vth <- m$tJac %*% Va %*% t(m$tJac)
  st <- st_of(m)
  se_stpar <- sqrt(diag(V))[nco + seq_along(st)]
  se_st <- if (ssr) list(sd = vec(se_stpar * st), log_sd = vec(se_stpar))
           else list(sd = vec(se_stpar), log_sd = vec(se_stpar / st))
  vc <- VarCorr(m)
  for (g in names(vc)) stopifnot(isTRUE(all.equal(unname(attr(vc[[g]], "stddev")), unname(as.vector(m$ST[[g]])))))
  re <- ranef(m)
  cv <- condVar(m)
  ranef_out <- lapply(setNames(names(re), names(re)), function(g)
    list(levels = vec(rownames(re[[g]])), values = vec(re[[g]][[1]]), condsd = vec(sqrt(cv[[g]][[1]]))))
  ll <- logLik(m)

  ## --- predictions (random effects 0, and at the conditional modes)
  nd_cols <- c(all.vars(lme4::nobars(cs$formula))[-1], S$terms)
  nd <- dat[1:5, nd_cols, drop = FALSE]
  for (j in nd_cols) if (is.factor(nd[[j]])) nd[[j]] <- as.character(nd[[j]])
  nd <- do.call(rbind, c(list(nd), cs$newrows))
  rownames(nd) <- NULL
  ndf <- nd
  for (j in nd_cols) if (is.factor(dat[[j]]) && !(j %in% S$terms))
    ndf[[j]] <- factor(nd[[j]], levels = levels(dat[[j]]))
  fixed_rhs <- reformulate(attr(terms(lme4::nobars(cs$formula)), "term.labels"))
  Xn <- model.matrix(fixed_rhs, ndf)[, -1, drop = FALSE]
  stopifnot(identical(colnames(Xn), names(m$beta)))
  lp <- as.vector(Xn %*% m$beta)
  bre <- rowSums(vapply(S$terms, function(g) {
    v <- setNames(re[[g]][[1]], rownames(re[[g]]))[nd[[g]]]
    ifelse(is.na(v), 0, v)
  }, numeric(nrow(nd))))
  thr <- as.vector(m$Theta)
  lf <- link_fns(cs$link)
  cum_of <- function(eta) t(vapply(eta, function(e) lf$p(thr - e), numeric(length(thr))))
  probs_of <- function(eta) t(vapply(eta, function(e) diff(c(0, lf$p(thr - e), 1)), numeric(length(thr) + 1)))
  cum0 <- cum_of(lp); pr0 <- probs_of(lp); pr_re <- probs_of(lp + bre)
  yname <- all.vars(cs$formula)[1]
  yobs <- as.integer(dat[[yname]][1:5])
  stopifnot(isTRUE(all.equal(pr_re[cbind(1:5, yobs)], unname(fitted(m)[1:5]), tolerance = 1e-10)))

  ## --- exact fit details, on ordinal's parameter scale
  exd <- exact_objective(S, ex$par, detail = TRUE)
  Hex <- hess_fd(function(p) exact_objective(S, p), ex$par)   # (alpha, beta, log sd)
  if (!ssr) {                       # to (alpha, beta, sd); gradient term ~0 at the optimum
    J <- diag(c(rep(1, nco), 1 / exd$st), length(ex$par))
    Hex <- J %*% Hex %*% J
  }
  Vex <- solve(Hex)
  dimnames(Vex) <- dimnames(V)
  ex_alpha <- ex$par[seq_along(m$alpha)]
  ex_beta <- ex$par[length(m$alpha) + seq_along(m$beta)]
  se_ex_stpar <- sqrt(diag(Vex))[nco + seq_along(st)]
  Hinv <- chol2inv(chol(exd$H))
  ex_cond <- exd$lam * exd$u
  ex_condsd <- exd$lam * sqrt(diag(Hinv))
  ex_ranef <- lapply(setNames(seq_along(S$terms), S$terms), function(k) {
    idx <- which(S$term_of == k)
    list(values = vec(ex_cond[idx]), condsd = vec(ex_condsd[idx]))
  })
  ev <- eigen(Hex, symmetric = TRUE, only.values = TRUE)$values
  exact_fit <- list(
    objective = ex$value, loglik = -ex$value,
    par_names = vec(c(names(m$coefficients), paste0("log_sd.", S$terms))),
    par = vec(ex$par),
    max_abs_grad = max(abs(ex$grad)),
    alpha = vec(ex_alpha), thresholds = vec(m$tJac %*% ex_alpha), beta = vec(ex_beta),
    st = as.list(setNames(lapply(exp(ex$par[nco + seq_along(st)]), vec), S$terms)),
    se = vec(sqrt(diag(Vex))[1:nco]),
    se_thresholds = vec(sqrt(diag(m$tJac %*% Vex[seq_along(m$alpha), seq_along(m$alpha), drop = FALSE] %*% t(m$tJac)))),
    se_st = if (ssr) list(sd = vec(se_ex_stpar * exd$st), log_sd = vec(se_ex_stpar))
            else list(sd = vec(se_ex_stpar), log_sd = vec(se_ex_stpar / exd$st)),
    vcov_full = unname(Vex),
    condHess = max(abs(ev)) / min(abs(ev)),
    ranef = ex_ranef,
    nlminb_message = ex$nlminb_message, newton_steps = ex$newton_steps,
    max_abs_par_diff_from_ordinal = max(abs(ex$par - ord_par_of(m)))
  )

  out <- list(
    case = cs$case,
    r_call = r_call_string(cs),
    data = cs$data_path,
    python = list(formula = cs$py_formula, random = vec(cs$py_random), link = cs$link,
                  threshold = cs$threshold, nAGQ = cs$nAGQ, levels = vec(m$y.levels)),
    link = m$link, threshold = m$threshold, nAGQ = m$nAGQ,
    nobs = nobs(m),
    ngroups = as.list(setNames(vapply(m$gfList, nlevels, integer(1)), names(m$gfList))),
    levels = vec(m$y.levels),
    alpha = named(m$alpha),
    thresholds = list(names = vec(colnames(m$Theta)), values = vec(m$Theta)),
    tJac = unname(m$tJac),
    beta = named(m$beta),
    coefficients = named(m$coefficients),
    se = vec(sqrt(diag(Vc))),
    vcov = unname(Vc),
    se_thresholds = vec(sqrt(diag(Vth))),
    vcov_thresholds = unname(Vth),
    vcov_full = unname(V),
    vcov_full_names = vec(rownames(V)),
    vcov_source = "vcov(clmm(<same call>, start = <chosen tight parameters>, control = clmm.control(iter.max = 0)))",
    se_tight_raw = vec(sqrt(diag(V_raw))),
    vcov_full_tight_raw = unname(V_raw),
    condHess_tight_raw = sm_raw$condHess,
    st_parameterization = if (ssr) "log_sd" else "sd",
    se_st = se_st,
    st = as.list(setNames(lapply(m$ST, function(s) vec(s)), names(m$ST))),
    variance_components = lapply(names(m$ST), function(g)
      list(grp = g, var1 = colnames(m$ST[[g]]), var2 = NA,
           vcov = as.vector(m$ST[[g]])^2, sdcor = as.vector(m$ST[[g]]))),
    loglik = as.numeric(ll),
    objective = -as.numeric(ll),
    minus2loglik = -2 * as.numeric(ll),
    aic = AIC(m), bic = BIC(m), df = as.integer(attr(ll, "df")),
    condHess = sm$condHess,
    cond_H = sm$info$cond.H,
    max_grad = max(abs(m$gradient)),
    ranef = ranef_out,
    fitted_first10 = first10(fitted(m)),
    predict = list(newdata = lapply(as.list(nd), vec),
                   categories = vec(m$y.levels),
                   linear_predictor = vec(lp),
                   cumprobs = unname(cum0),
                   probs = unname(pr0),
                   linear_predictor_with_re = vec(lp + bre),
                   probs_with_re = unname(pr_re)),
    objective_exact = texact[[best]],
    laplace_check = list(method = if (cs$nAGQ > 1L) sprintf("adaptive GHQ, %d nodes", cs$nAGQ) else "Laplace",
                         objective_exact = texact[[best]],
                         diff_from_ordinal = texact[[best]] - (-as.numeric(ll))),
    exact_fit = exact_fit,
    ordinal_ssr_path = ssr_path,
    default_fit = list(alpha = vec(m_def$alpha), beta = vec(m_def$beta), st = vec(st_of(m_def)),
                       loglik = m_def$logLik, objective = -m_def$logLik,
                       objective_exact = def_exact,
                       optimizer = m_def$control$method, message = m_def$optRes$message,
                       max_grad = max(abs(m_def$gradient)),
                       grtol_nlminb_identical = brief_identical,
                       warnings = vec(dedupe_msgs(fd$msgs))),
    r_seconds = fd$seconds,
    tight_fit = list(chosen = best, control = ctrl_desc[[best]],
                     start = if (best == "nlminb_g1e-08_start_exact") "exact_fit$par" else NA,
                     candidates = as.list(tobj), candidates_exact = as.list(texact),
                     candidates_par = lapply(tight, function(f) if (is.null(f$value)) NA else vec(ord_par_of(f$value))),
                     candidates_message = lapply(tight, function(f) if (is.null(f$value)) NA else f$value$optRes$message),
                     controls = ctrl_desc[names(tight)],
                     seconds = lapply(tight, function(f) f$seconds),
                     warnings = lapply(tight, function(f) vec(dedupe_msgs(f$msgs)))),
    warnings = vec(dedupe_msgs(msgs)),
    data_columns = vec(names(dat)),
    notes = vec(cs$notes)
  )
  if (!is.list(ssr_path)) out$ordinal_ssr_path <- NULL
  write_json(out, file.path(out_dir, paste0(cs$case, ".json")),
             digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null")

  summary_rows[[cs$case]] <- data.frame(
    case = cs$case, loglik = as.numeric(ll), st = paste(signif(st, 7), collapse = ","),
    tight = best, def_gap = m_def$logLik - as.numeric(ll),
    def_gap_exact = def_exact - texact[[best]],
    exact_gap = texact[[best]] - ex$value,
    par_diff_exact = exact_fit$max_abs_par_diff_from_ordinal,
    se_reldiff = max(abs(sqrt(diag(Vex)) / sqrt(diag(V)) - 1)),
    se_raw_reldiff = max(abs(sqrt(diag(Vex)) / sqrt(diag(V_raw)) - 1)),
    nwarn = length(msgs), sec = fd$seconds)
}

cat("\nSummary\n")
smry <- do.call(rbind, summary_rows); rownames(smry) <- NULL
print(smry, digits = 10)
