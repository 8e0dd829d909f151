#!/usr/bin/env Rscript
## make_glmer_reference.R -- lme4 reference values for the interlace GLMM test-suite.
##
## Generated with: R 4.2.2 Patched (2022-11-10 r83330), lme4 1.1-31, jsonlite 1.8.4,
## MASS (for glmer.nb's negative.binomial family); Debian packages.  Other versions
## may give slightly different default fits.
##
## Run from the repository root:
##     Rscript interlace/tests/reference/make_glmer_reference.R
##
## It (re)writes
##   interlace/datasets/data/{cbpp,grouseticks,verbagg}.csv   real lme4 datasets
##   interlace/datasets/data/README.md     provenance lines are APPENDED (only lines
##                                         not already present; nothing is rewritten)
##   interlace/tests/reference/data/glmm_*.csv   simulated datasets (set.seed, deterministic)
##   interlace/tests/reference/glmer/<case>.json one JSON of reference values per case
##
## CSV conventions are those of make_lmer_reference.R: header row, no row names, no
## quoting (labels are checked for commas/quotes), missing values are EMPTY fields,
## factors written as their labels (ordered factors too, e.g. VerbAgg "resp"),
## simulated numeric columns rounded to 6 decimals, simulated labels zero-padded.
## Simulated data are written first and READ BACK from the CSV before fitting.
## Real datasets are fitted on the lme4 objects themselves; the script checks that the
## CSV round-trips them exactly.  Derived real-data columns that need more than 15
## significant digits (cbpp "prop", grouseticks "cHEIGHT") are written with the
## shortest representation (<= 17 digits) that round-trips the double exactly.
##
## JSON conventions (jsonlite::write_json, digits = NA, auto_unbox = TRUE), as for lmer:
##   * every vector-valued field is a JSON array, even when of length 1;
##   * -Inf in "lower" is written as null; R NA / NULL are written as null;
##   * grouping-factor names and varcorr rows follow lme4 (ngrps(), ranef(),
##     as.data.frame(VarCorr(m)));
## GLMM-specific conventions:
##   * "minus2loglik" = -2 * logLik(m) (Laplace / AGQ approximation; for nAGQ = 0 the
##     Laplace formula evaluated at the nAGQ = 0 estimates), as reported by lme4; also
##     stored as "objective" (and in "default_fit"/"tight_fit$candidates").  For
##     glmer.nb it is -2 logLik at the final NB theta, the criterion of glmer.nb's
##     outer optimize() over log(theta).  "objective_exact": see "tight fits" below.
##   * "deviance" = deviance(m) = lme4's sum of squared deviance residuals at the
##     conditional modes (devcomp "drsum"); it is NOT -2 logLik for GLMMs.
##   * "loglik" = logLik(m); "aic", "bic", "df" from AIC()/BIC()/attr(logLik, "df").
##   * "sigma" = sigma(m) (1 for binomial/poisson/negative binomial).
##   * "vcov"/"se" are lme4's defaults (vcov(m) == summary(m)$vcov): for nAGQ >= 1 lme4
##     uses the finite-difference Hessian of the (theta, beta) deviance when available
##     ("vcov_source" = "hessian"); "vcov_rx"/"se_rx" are vcov(m, use.hessian = FALSE),
##     the sigma^2 * (RX'RX)^-1 estimate at the conditional modes (deterministic; the
##     Hessian version depends on lme4's finite-difference scheme, compare loosely).
##   * "fitted" = fitted(m), RESPONSE scale; for binomial fits this is the success
##     PROBABILITY (also for the cbind(successes, failures) form).
##   * "eta_first10" = predict(m, type = "link")[1:10] (includes any offset).
##   * "predict": newdata = first 5 data rows (model columns only) + one row whose
##     grouping levels are all "NEW"; "link_with_re", "link_fixed_only",
##     "response_with_re", "response_fixed_only" from predict(m, newdata, type = ...,
##     allow.new.levels = TRUE) with re.form = NULL / NA.
##   * offset case: lme4 1.1-31's predict(newdata=) ignores an offset given via the
##     `offset=` ARGUMENT.  Stored predictions INCLUDE the newdata offset (checked
##     against the equivalent `+ offset(logt)` formula model); lme4's raw offset-free
##     output is kept in "lme4_raw_*".
##   * "residuals": first 10 of residuals(m, type) for response / pearson / deviance.
##   * "ranef": per grouping factor {levels, columns: {col: values}, condsd: {col:
##     sqrt of the diagonal of attr(ranef(m, condVar = TRUE)[[g]], "postVar")}}.
##   * "family"/"link" use the interlace names (python block); "r_family" is
##     family(m)$family; "nb_theta" = getME(m, "glmer.nb.theta") for glmer.nb.
##   * "python": intended interlace call: formula (fixed part), random, family, link,
##     weights, offset (column names or null), nAGQ, response (for the two-column
##     binomial form {"successes": col, "failures": col}, else null; the formula's
##     left-hand side is then the successes column).
##   * "r_seconds" = elapsed seconds (system.time) of the DEFAULT-control fit;
##     "tight_fit$seconds" gives the tight fits' times (machine dependent!).
##   * tight fits: six candidates, one optimizer for both glmer stages:
##       bobyqa:    optCtrl = list(rhoend = 1e-10, maxfun = 1e5)
##       nloptwrap: optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14, xtol_rel = 1e-12, maxeval = 1e5)
##     each with tolPwrss = 1e-13, 1e-12 and lme4's default 1e-7 (names
##     "<optimizer>_pwrss<tol>").  lme4's PIRLS tolerance is relative to the penalized
##     deviance; at 1e-7 the reported -2 logLik can be ~1e-3 too high and theta off by
##     ~1e-4 (relative), far too loose for reference values.  Candidates are compared
##     by "objective_exact": lme4's own deviance function (glmer(devFunOnly = TRUE),
##     tolPwrss = 1e-13, fallback 1e-12) evaluated at the candidate's (theta, beta)
##     (theta only for nAGQ = 0; at the fit's NB theta for glmer.nb).  Among the
##     candidates within 1e-9 of the lowest, the smallest tolPwrss wins.  For glmer.nb
##     the theta step (optimize() over log(theta), default tol 5e-5) is re-run with
##     tol = 1e-10 (see fit_call()).
##   * "default_fit": lme4 defaults (glmerControl(), glmer.nb defaults): theta, fixef,
##     reported objective (-2 logLik) and objective_exact (see above).
##   * "laplace_check" (nAGQ = 1 binomial/poisson/NB): -2 logLik recomputed at the
##     reference (theta, beta) with fully converged conditional modes (laplace_check()
##     below); lme4's own value uses a Cholesky factor lagging one PIRLS iterate and
##     can differ by ~1e-7 .. 2e-6 absolute.  null for Gamma and nAGQ != 1.
##   * precision: bobyqa and nloptwrap (tolPwrss 1e-13) agree on the objective to
##     ~1e-10 (VerbAgg Laplace: 6e-9), on theta to ~1e-6 relative and on fixef to
##     ~1e-6 (VerbAgg: up to 2e-5 for its smallest coefficient): compare parameters
##     with rtol >= 1e-5 and objectives with atol ~1e-5 (see "laplace_check").  For
##     non-canonical links (probit, cloglog, NB log) lme4's conditional modes are only
##     converged to ~5e-7 (PIRLS stops on the relative pdev change).  lme4's DEFAULT
##     grouseticks fit is not reproducible run to run (theta varies ~1e-5); the tight
##     fits are.
##   * "se_precise": fixed-effect SEs from lme4's deviance function at tolPwrss = 1e-13
##     with second differences of step 1e-3 (see precise_vcov()); lme4's own vcov uses
##     step 1e-4 on a noisier devfun and can be off by ~0.5 % (poisson_offset).
##   * extra fields: "objective", "objective_exact", "laplace_check", "r_family",
##     "vcov_source", "vcov_rx", "se_rx", "tight_fit", "warnings" (R warnings/messages
##     raised by the chosen tight fit; "tight_fit$warnings" for all candidates),
##     "data_columns", "notes".

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

if (!file.exists("interlace/tests/reference/make_glmer_reference.R"))
  stop("run this script from the repository root")

real_dir <- "interlace/datasets/data"
sim_dir  <- "interlace/tests/reference/data"
out_dir  <- "interlace/tests/reference/glmer"
for (d in c(real_dir, sim_dir, out_dir)) dir.create(d, recursive = TRUE, showWarnings = FALSE)

lme4_version <- packageDescription("lme4")$Version   # e.g. "1.1-31"

## ---------------------------------------------------------------------------
## CSV helpers (same conventions as make_lmer_reference.R)
## ---------------------------------------------------------------------------
source("interlace/tests/reference/reference_helpers.R")

## ---------------------------------------------------------------------------
## 1. real datasets
## ---------------------------------------------------------------------------
cbpp_df <- lme4::cbpp
cbpp_df$failures <- cbpp_df$size - cbpp_df$incidence
cbpp_df$prop <- cbpp_df$incidence / cbpp_df$size

real <- list(
  cbpp        = cbpp_df,
  grouseticks = lme4::grouseticks,
  verbagg     = lme4::VerbAgg[, c("id", "item", "resp", "r2", "Anger", "Gender", "btype", "situ", "mode")]
)
stopifnot(identical(real$grouseticks$cHEIGHT, real$grouseticks$HEIGHT - mean(real$grouseticks$HEIGHT)))
real_desc <- list(
  cbpp = paste("herd = herd id (factor 1-15); incidence = number of new serological cases of CBPP;",
               "size = herd size at the start of the period; period = period (factor 1-4);",
               "failures = size - incidence (added); prop = incidence / size (added, exact doubles up to 17 digits)"),
  grouseticks = paste("INDEX = observation (chick) id (factor 1-403); TICKS = number of ticks;",
                      "BROOD = brood id (factor, 118 levels); HEIGHT = altitude (m); YEAR = year (factor 95-97);",
                      "LOCATION = location (factor, 63 levels); cHEIGHT = HEIGHT - mean(HEIGHT) (lme4's column, exact doubles up to 17 digits)"),
  verbagg = paste("(subset of lme4's columns) id = subject (factor, 316 levels); item = item (factor, 24 levels);",
                  "resp = response (ordered factor no < perhaps < yes, label); r2 = dichotomized response (factor N/Y);",
                  "Anger = trait anger score; Gender = F/M; btype = behaviour type (curse/scold/shout);",
                  "situ = situation type (other/self); mode = want/do")
)
real_rname <- c(cbpp = "cbpp", grouseticks = "grouseticks", verbagg = "VerbAgg")

write_real_datasets(real, real_desc, real_rname, real_dir, "make_glmer_reference.R", "lme4", lme4_version)

## ---------------------------------------------------------------------------
## 2. simulated datasets (written, then read back from CSV)
## ---------------------------------------------------------------------------
## each group index 1..ng at least once, remaining n - ng drawn at random
all_groups <- function(ng, n, prob = NULL) sample(c(1:ng, sample(ng, n - ng, replace = TRUE, prob = prob)))

## 5/7: binary, crossed random intercepts (50 x 30 levels)
set.seed(20240701)
{
  n1 <- 50; n2 <- 30; n <- 3000
  i1 <- all_groups(n1, n); i2 <- all_groups(n2, n)
  u1 <- rnorm(n1, 0, 0.9); u2 <- rnorm(n2, 0, 0.5)
  x <- r6(rnorm(n))
  eta <- -0.4 + 0.8 * x + u1[i1] + u2[i2]
  y <- rbinom(n, 1, plogis(eta))
  d <- data.frame(y = y, x = x, g1 = lab("g", i1, 2), g2 = lab("h", i2, 2))
  write_csv_plain(d, file.path(sim_dir, "glmm_binary_crossed.csv"))
}

## 6: binary, correlated random intercept + slope, 60 groups
set.seed(20240702)
{
  ng <- 60; n <- 2400
  g <- sort(all_groups(ng, n))
  S <- matrix(c(1.0^2, 0.5 * 1.0 * 0.6, 0.5 * 1.0 * 0.6, 0.6^2), 2)
  U <- matrix(rnorm(2 * ng), ng, 2) %*% chol(S)
  x <- r6(rnorm(n))
  eta <- 0.3 + 0.7 * x + U[g, 1] + U[g, 2] * x
  y <- rbinom(n, 1, plogis(eta))
  d <- data.frame(y = y, x = x, g = lab("g", g, 2))
  write_csv_plain(d, file.path(sim_dir, "glmm_binary_slope.csv"))
}

## 9: Poisson counts with exposure t (offset log(t))
set.seed(20240703)
{
  ng <- 40; n <- 800
  g <- sort(all_groups(ng, n))
  t <- sample(1:20, n, replace = TRUE)
  logt <- r6(log(t))
  x <- r6(rnorm(n))
  u <- rnorm(ng, 0, 0.6)
  eta <- logt - 1 + 0.5 * x + u[g]
  y <- rpois(n, exp(eta))
  d <- data.frame(y = y, x = x, g = lab("g", g, 2), t = t, logt = logt)
  write_csv_plain(d, file.path(sim_dir, "glmm_poisson_offset.csv"))
}

## 10: Gamma, log link
set.seed(20240704)
{
  ng <- 30; n <- 600; shape <- 4
  g <- sort(all_groups(ng, n))
  x <- r6(rnorm(n))
  u <- rnorm(ng, 0, 0.5)
  mu <- exp(1 + 0.4 * x + u[g])
  y <- r6(rgamma(n, shape = shape, rate = shape / mu))
  stopifnot(all(y > 0))
  d <- data.frame(y = y, x = x, g = lab("g", g, 2))
  write_csv_plain(d, file.path(sim_dir, "glmm_gamma.csv"))
}

## 11: negative binomial counts
set.seed(20240705)
{
  ng <- 40; n <- 800; nb_size <- 2.5
  g <- sort(all_groups(ng, n))
  x <- r6(rnorm(n))
  u <- rnorm(ng, 0, 0.5)
  mu <- exp(1 + 0.5 * x + u[g])
  y <- rnbinom(n, size = nb_size, mu = mu)
  d <- data.frame(y = y, x = x, g = lab("g", g, 2))
  write_csv_plain(d, file.path(sim_dir, "glmm_negbin.csv"))
}

## 12: inverse Gaussian, log link (draws by Michael, Schucany & Haas's transformation)
set.seed(20240706)
{
  ng <- 30; n <- 600; lambda <- 8
  g <- sort(all_groups(ng, n))
  x <- r6(rnorm(n))
  u <- rnorm(ng, 0, 0.4)
  mu <- exp(0.5 + 0.3 * x + u[g])
  v <- rnorm(n)^2
  z <- mu + mu^2 * v / (2 * lambda) - mu / (2 * lambda) * sqrt(4 * mu * lambda * v + mu^2 * v^2)
  y <- r6(ifelse(runif(n) <= mu / (mu + z), z, mu^2 / z))
  stopifnot(all(y > 0))
  d <- data.frame(y = y, x = x, g = lab("g", g, 2))
  write_csv_plain(d, file.path(sim_dir, "glmm_invgauss.csv"))
}

sim <- list()
for (nm in c("glmm_binary_crossed", "glmm_binary_slope", "glmm_poisson_offset", "glmm_gamma", "glmm_negbin",
             "glmm_invgauss"))
  sim[[nm]] <- read_csv_plain(file.path(sim_dir, paste0(nm, ".csv")))

## ---------------------------------------------------------------------------
## 3. case definitions
## ---------------------------------------------------------------------------
## family: an R family object, or "nb" for glmer.nb; py_family/py_link: interlace names
mk <- function(case, formula, dataname, df, data_path, family, py_family, py_link,
               py_formula, py_random, newrows, nAGQ = 1L, weights = NULL, offset = NULL,
               response = NULL, notes = character()) {
  list(case = case, formula = formula, dataname = dataname, df = df, data_path = data_path,
       family = family, py_family = py_family, py_link = py_link, py_formula = py_formula,
       py_random = py_random, newrows = newrows, nAGQ = as.integer(nAGQ), weights = weights,
       offset = offset, response = response, notes = notes)
}
rp <- function(nm) file.path(real_dir, paste0(nm, ".csv"))
sp <- function(nm) file.path(sim_dir, paste0(nm, ".csv"))

cbpp_new <- list(data.frame(period = "2", herd = "NEW"))
cbpp_resp <- list(successes = "incidence", failures = "failures")
cbpp_note <- "fitted, residuals (response) and predict(type = 'response') are on the proportion scale"
gt_formula <- TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)
va_formula <- r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)
va_new <- list(data.frame(Anger = 20L, Gender = "F", btype = "shout", situ = "self", id = "NEW", item = "NEW"))
va_note <- "response r2 is a factor N/Y: first level N = failure (0), Y = success (1)"

cases <- list(
  mk("cbpp_logit", cbind(incidence, size - incidence) ~ period + (1 | herd), "cbpp", real$cbpp, rp("cbpp"),
     binomial(link = "logit"), "binomial", "logit", "incidence ~ period", "(1 | herd)", cbpp_new,
     response = cbpp_resp, notes = cbpp_note),
  mk("cbpp_probit", cbind(incidence, size - incidence) ~ period + (1 | herd), "cbpp", real$cbpp, rp("cbpp"),
     binomial(link = "probit"), "binomial", "probit", "incidence ~ period", "(1 | herd)", cbpp_new,
     response = cbpp_resp, notes = cbpp_note),
  mk("cbpp_agq25", cbind(incidence, size - incidence) ~ period + (1 | herd), "cbpp", real$cbpp, rp("cbpp"),
     binomial(link = "logit"), "binomial", "logit", "incidence ~ period", "(1 | herd)", cbpp_new,
     nAGQ = 25L, response = cbpp_resp, notes = cbpp_note),
  mk("cbpp_prop_weights", incidence / size ~ period + (1 | herd), "cbpp", real$cbpp, rp("cbpp"),
     binomial(link = "logit"), "binomial", "logit", "prop ~ period", "(1 | herd)", cbpp_new,
     weights = "size",
     notes = c("same model as cbpp_logit: response prop = incidence/size with prior weights size",
               "R fits incidence/size computed from lme4::cbpp; the CSV column prop holds the identical doubles")),
  mk("binary_crossed", y ~ x + (1 | g1) + (1 | g2), "glmm_binary_crossed", sim$glmm_binary_crossed,
     sp("glmm_binary_crossed"), binomial(link = "logit"), "binomial", "logit", "y ~ x",
     c("(1 | g1)", "(1 | g2)"), list(data.frame(x = 0.5, g1 = "NEW", g2 = "NEW"))),
  mk("binary_slope", y ~ x + (1 + x | g), "glmm_binary_slope", sim$glmm_binary_slope,
     sp("glmm_binary_slope"), binomial(link = "logit"), "binomial", "logit", "y ~ x",
     "(1 + x | g)", list(data.frame(x = 0.5, g = "NEW"))),
  mk("binary_cloglog", y ~ x + (1 | g1) + (1 | g2), "glmm_binary_crossed", sim$glmm_binary_crossed,
     sp("glmm_binary_crossed"), binomial(link = "cloglog"), "binomial", "cloglog", "y ~ x",
     c("(1 | g1)", "(1 | g2)"), list(data.frame(x = 0.5, g1 = "NEW", g2 = "NEW"))),
  mk("grouseticks_poisson", gt_formula, "grouseticks", real$grouseticks, rp("grouseticks"),
     poisson(link = "log"), "poisson", "log", "TICKS ~ YEAR + cHEIGHT",
     c("(1 | BROOD)", "(1 | INDEX)", "(1 | LOCATION)"),
     list(data.frame(YEAR = "96", cHEIGHT = 10, BROOD = "NEW", INDEX = "NEW", LOCATION = "NEW")),
     notes = c("lme4's ?grouseticks example uses raw HEIGHT, which triggers convergence / 'Rescale variables?' warnings;",
               "here the centred cHEIGHT = HEIGHT - mean(HEIGHT) shipped with lme4 is used (GLMM FAQ version);",
               "theta and the likelihood equal those of TICKS ~ YEAR + scale(HEIGHT) + ...; only the cHEIGHT coefficient is rescaled",
               "INDEX is an observation-level random effect (one level per row)")),
  mk("poisson_offset", y ~ x + (1 | g), "glmm_poisson_offset", sim$glmm_poisson_offset,
     sp("glmm_poisson_offset"), poisson(link = "log"), "poisson", "log", "y ~ x", "(1 | g)",
     list(data.frame(x = 0.5, g = "NEW", logt = r6(log(5)))), offset = "logt",
     notes = "offset is the CSV column logt (= log(t) rounded to 6 decimals), not log(t)"),
  mk("gamma_log", y ~ x + (1 | g), "glmm_gamma", sim$glmm_gamma, sp("glmm_gamma"),
     Gamma(link = "log"), "Gamma", "log", "y ~ x", "(1 | g)", list(data.frame(x = 0.5, g = "NEW")),
     notes = c("sigma = sigma(m) = sqrt(pwrss / n) (devcomp sigmaML; pwrss = weighted working-residual SS + |u|^2)",
               "theta is relative to sigma: random-effect sd = theta * sigma (varcorr sdcor)",
               "-2 logLik = Gamma()$aic(y, 1, mu, wt, dev = sum(deviance residuals^2)) + |u|^2 + ldL2; R's Gamma aic uses dispersion dev/n and adds 2")),
  mk("invgauss_log", y ~ x + (1 | g), "glmm_invgauss", sim$glmm_invgauss, sp("glmm_invgauss"),
     inverse.gaussian(link = "log"), "inverse_gaussian", "log", "y ~ x", "(1 | g)",
     list(data.frame(x = 0.5, g = "NEW")),
     notes = "as gamma_log: dispersion dev/n in R's inverse.gaussian()$aic, sigma = sqrt(pwrss / n), theta relative to sigma"),
  mk("negbin", y ~ x + (1 | g), "glmm_negbin", sim$glmm_negbin, sp("glmm_negbin"),
     "nb", "negative_binomial", "log", "y ~ x", "(1 | g)", list(data.frame(x = 0.5, g = "NEW")),
     notes = "glmer.nb; nb_theta is the NB shape (size), Var = mu + mu^2/theta; df includes theta"),
  mk("verbagg_laplace", va_formula, "VerbAgg", real$verbagg, rp("verbagg"),
     binomial(link = "logit"), "binomial", "logit", "r2 ~ Anger + Gender + btype + situ",
     c("(1 | id)", "(1 | item)"), va_new, notes = va_note),
  mk("verbagg_nagq0", va_formula, "VerbAgg", real$verbagg, rp("verbagg"),
     binomial(link = "logit"), "binomial", "logit", "r2 ~ Anger + Gender + btype + situ",
     c("(1 | id)", "(1 | item)"), va_new, nAGQ = 0L,
     notes = c(va_note, "nAGQ = 0: beta estimated in PIRLS; objective/minus2loglik is the Laplace formula at those estimates"))
)

## ---------------------------------------------------------------------------
## 4. fitting
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

ctrl_default <- glmerControl()
## tolPwrss: lme4's PIRLS convergence tolerance (RELATIVE change of the penalized
## deviance, default 1e-7).  At the default the conditional modes are not converged
## well enough for reference values: e.g. VerbAgg's reported -2 logLik is 7.6e-4 too
## high and theta is off by ~1e-4 (relative); for grouseticks even tolPwrss = 1e-12
## leaves the Laplace deviance 4.7e-5 off (1e-13 agrees with an independent Newton
## solve of the conditional modes to 1e-10).  Candidates: tolPwrss = 1e-13 and 1e-12
## (1e-14 fails with "PIRLS step-halvings failed") and the brief's default 1e-7.
optctrl_bobyqa <- list(rhoend = 1e-10, maxfun = 100000)
optctrl_nlopt  <- list(xtol_abs = 1e-12, ftol_abs = 1e-14, xtol_rel = 1e-12, maxeval = 100000)
ctrl_tight <- list()
for (tp in c(1e-13, 1e-12, 1e-7)) {
  tag <- sprintf("_pwrss%g", tp)
  ctrl_tight[[paste0("bobyqa", tag)]] <-
    glmerControl(optimizer = "bobyqa", optCtrl = optctrl_bobyqa, tolPwrss = tp)
  ctrl_tight[[paste0("nloptwrap", tag)]] <-
    glmerControl(optimizer = "nloptwrap", optCtrl = optctrl_nlopt, tolPwrss = tp)
}
nb_tol_tight <- 1e-10

fit_call <- function(cs, control, tight, formula = cs$formula, offset = cs$offset) {
  wsym <- if (is.null(cs$weights)) NULL else as.name(cs$weights)
  osym <- if (is.null(offset)) NULL else as.name(offset)
  if (identical(cs$family, "nb")) {
    cl <- bquote(glmer.nb(.(formula), data = dat, weights = .(wsym), offset = .(osym),
                          na.action = na.omit, control = .(control)))
    ## lme4 1.1-31's glmer.nb() forwards an explicit `tol =` (or `interval =`) to its
    ## initial glmer() call, which fails ("unused argument").  The tight fit therefore
    ## re-runs glmer.nb's own theta step, lme4:::optTheta() (optimize() of
    ## -2 logLik over log(theta), warm-started refits), with tol = 1e-10 on an
    ## interval of +-1 around the default-tol estimate.  optTheta() returns its last
    ## warm-started refit(), whose reported -2 logLik was 6e-7 above lme4's deviance
    ## function at the same parameters; so the final object is a clean glmer() fit with
    ## family = MASS::negative.binomial(theta = <final NB theta>) (same df: lme4 counts
    ## the NB theta for any "Negative Binomial" family).
    if (tight) bquote({
      m_nb <- .(cl)
      m_nb <- lme4:::optTheta(m_nb, interval = log(getME(m_nb, "glmer.nb.theta")) + c(-1, 1),
                              tol = .(nb_tol_tight), control = .(control))
      nb_th <- getME(m_nb, "glmer.nb.theta")
      glmer(.(formula), data = dat, family = MASS::negative.binomial(theta = nb_th),
            weights = .(wsym), offset = .(osym), na.action = na.omit, control = .(control))
    }) else cl
  } else {
    bquote(glmer(.(formula), data = dat, family = .(cs$family), nAGQ = .(cs$nAGQ),
                 weights = .(wsym), offset = .(osym), na.action = na.omit, control = .(control)))
  }
}

fit_one <- function(cs, control, tight, ...) {
  dat <- cs$df
  cl <- fit_call(cs, control, tight, ...)
  capture(eval(cl))
}

## "exact" objective of a fit: lme4's own deviance function (glmer(devFunOnly = TRUE))
## built with tolPwrss = 1e-13 (fallback 1e-12), evaluated at the fit's parameters:
## (theta, beta) for nAGQ >= 1, theta for nAGQ = 0; for glmer.nb at the fit's NB theta.
## Makes candidates fitted with different tolPwrss comparable.
exact_objective <- function(cs, m) {
  dat <- cs$df
  wsym <- if (is.null(cs$weights)) NULL else as.name(cs$weights)
  osym <- if (is.null(cs$offset)) NULL else as.name(cs$offset)
  fam <- if (identical(cs$family, "nb"))
    MASS::negative.binomial(theta = getME(m, "glmer.nb.theta")) else cs$family
  nagq <- if (identical(cs$family, "nb")) 1L else cs$nAGQ
  par <- if (nagq == 0L) getME(m, "theta") else c(getME(m, "theta"), fixef(m))
  for (tp in c(1e-13, 1e-12)) {
    val <- tryCatch({
      dfun <- suppressWarnings(suppressMessages(eval(bquote(
        glmer(.(cs$formula), data = dat, family = .(fam), nAGQ = .(nagq), weights = .(wsym),
              offset = .(osym), na.action = na.omit, devFunOnly = TRUE,
              control = glmerControl(tolPwrss = .(tp)))))))
      dfun(par)
    }, error = function(e) NA_real_)
    if (!is.na(val)) return(c(value = val, tolPwrss = tp))
  }
  c(value = NA_real_, tolPwrss = NA_real_)
}

objective <- function(m) -2 * as.numeric(logLik(m))

## Fixed-effect SEs from a Hessian that is not limited by PIRLS noise: lme4's own
## deviance function at tolPwrss = 1e-13, second differences with delta = 1e-3
## (lme4's vcov uses delta = 1e-4 on the fit's devfun, whose PIRLS noise can move the
## Hessian by ~0.5 %, e.g. poisson_offset). NA for nAGQ = 0 (lme4 uses RX there).
precise_vcov <- function(cs, m) {
  nagq <- if (identical(cs$family, "nb")) 1L else cs$nAGQ
  if (nagq == 0L) return(NULL)
  dat <- cs$df
  wsym <- if (is.null(cs$weights)) NULL else as.name(cs$weights)
  osym <- if (is.null(cs$offset)) NULL else as.name(cs$offset)
  fam <- if (identical(cs$family, "nb"))
    MASS::negative.binomial(theta = getME(m, "glmer.nb.theta")) else cs$family
  dfun <- suppressWarnings(suppressMessages(eval(bquote(
    glmer(.(cs$formula), data = dat, family = .(fam), nAGQ = .(nagq), weights = .(wsym),
          offset = .(osym), na.action = na.omit, devFunOnly = TRUE,
          control = glmerControl(tolPwrss = 1e-13))))))
  th <- getME(m, "theta")
  par <- c(th, fixef(m))
  ## parameters on the boundary (a zero variance) are held fixed, as interlace does
  free <- !(seq_along(par) <= length(th) & par < 1e-4 & c(getME(m, "lower"), rep(-Inf, length(fixef(m)))) == 0)
  f <- function(z) { p <- par; p[free] <- z; dfun(p) }
  H <- lme4:::deriv12(f, par[free], delta = 1e-3)$Hessian
  V <- solve(H / 2)
  nb <- length(fixef(m))
  k <- sum(free)
  Vb <- V[(k - nb + 1):k, (k - nb + 1):k, drop = FALSE]
  dimnames(Vb) <- NULL
  Vb
}

## Independent check of lme4's Laplace deviance (nAGQ = 1; binomial, poisson, NB):
## conditional modes u by damped Fisher scoring iterated to max|du| < 1e-12, then
##   -2 logLik = family aic (-2 log p(y | mu)) + |u|^2 + log det(Lambda'Z'WZLambda + I),
## W = prior weights * mu.eta^2 / variance (expected weights, as lme4 uses).
## lme4's devcomp ldL2 comes from the Cholesky factor of the previous PIRLS iterate,
## so its -2 logLik can differ from this by ~1e-7 .. 2e-6 absolute.
laplace_check <- function(m) {
  fam <- family(m)
  Lambdat <- getME(m, "Lambdat")
  Zt <- getME(m, "Zt"); X <- getME(m, "X"); y <- getME(m, "y")
  wts <- weights(m, type = "prior"); off <- getME(m, "offset")
  LZt <- Lambdat %*% Zt; q <- nrow(Zt)
  eta0 <- as.vector(X %*% fixef(m)) + off
  state <- function(u) {
    eta <- eta0 + as.vector(crossprod(LZt, u)); mu <- fam$linkinv(eta)
    list(mu = mu, mueta = fam$mu.eta(eta),
         obj = sum(fam$dev.resids(y, mu, wts)) + sum(u^2))
  }
  u <- rep(0, q); st <- state(u); it <- 0L
  repeat {
    it <- it + 1L
    w <- wts * st$mueta^2 / fam$variance(st$mu)
    H <- forceSymmetric(tcrossprod(LZt %*% Diagonal(x = sqrt(w))) + Diagonal(q))
    g <- as.vector(LZt %*% (wts * (y - st$mu) * st$mueta / fam$variance(st$mu))) - u
    du <- as.vector(solve(H, g))
    step <- 1
    repeat {
      nst <- state(u + step * du)
      if (nst$obj <= st$obj + 1e-10 * abs(st$obj) || step < 1e-8) break
      step <- step / 2
    }
    u <- u + step * du; st <- nst
    if (max(abs(step * du)) < 1e-12 || it >= 200L) break
  }
  w <- wts * st$mueta^2 / fam$variance(st$mu)
  H <- forceSymmetric(tcrossprod(LZt %*% Diagonal(x = sqrt(w))) + Diagonal(q))
  ldL2 <- as.numeric(determinant(H, logarithm = TRUE)$modulus)
  val <- fam$aic(y, rep(1, length(y)), st$mu, wts, 0) + sum(u^2) + ldL2
  list(minus2loglik = val, diff_from_lme4 = val - objective(m),
       max_abs_u_diff = max(abs(u - getME(m, "u"))), iterations = it)
}

r_call_string <- function(cs) {
  f <- paste(deparse(cs$formula, width.cutoff = 500L), collapse = " ")
  if (identical(cs$family, "nb")) {
    s <- paste0("glmer.nb(", f, ", data = ", cs$dataname)
  } else {
    s <- paste0("glmer(", f, ", data = ", cs$dataname, ", family = ", cs$family$family,
                "(link = \"", cs$family$link, "\")")
    if (cs$nAGQ != 1L) s <- paste0(s, ", nAGQ = ", cs$nAGQ)
  }
  if (!is.null(cs$weights)) s <- paste0(s, ", weights = ", cs$weights)
  if (!is.null(cs$offset))  s <- paste0(s, ", offset = ", cs$offset)
  paste0(s, ")")
}

first10 <- function(x) vec(unname(x)[seq_len(min(10L, length(x)))])

summary_rows <- list()

for (cs in cases) {
  cat("==", cs$case, "\n")
  fd <- fit_one(cs, ctrl_default, tight = FALSE)
  m_def <- fd$value
  tight <- lapply(ctrl_tight, function(ct)
    tryCatch(fit_one(cs, ct, tight = TRUE),
             error = function(e) list(value = NULL, msgs = paste("error:", conditionMessage(e)),
                                      seconds = NA_real_)))
  ok <- vapply(tight, function(f) !is.null(f$value), logical(1))
  tobj <- vapply(tight, function(f) if (is.null(f$value)) NA_real_ else objective(f$value), numeric(1))
  texact <- vapply(tight, function(f) if (is.null(f$value)) NA_real_ else exact_objective(cs, f$value)[["value"]],
                   numeric(1))
  def_exact <- exact_objective(cs, m_def)
  ## lowest exact objective; among candidates within 1e-9 of it the one with the
  ## smallest tolPwrss (best converged conditional modes, fitted values, ...)
  tp_of <- vapply(ctrl_tight, function(ct) ct$tolPwrss, numeric(1))
  near <- names(texact)[!is.na(texact) & texact - min(texact, na.rm = TRUE) <= 1e-9]
  near <- near[order(tp_of[near], texact[near])]
  best <- near[1]
  m <- tight[[best]]$value
  msgs <- tight[[best]]$msgs
  if (length(fd$msgs)) cat("  default fit:", fd$msgs, sep = "\n    ")
  for (nm in names(tight)) if (length(tight[[nm]]$msgs))
    cat(sprintf("  tight fit (%s):", nm), tight[[nm]]$msgs, sep = "\n    ")

  dat <- cs$df
  na_act <- attr(model.frame(m), "na.action")
  dropped <- if (is.null(na_act)) integer() else sort(as.integer(na_act))
  used <- if (length(dropped)) dat[-dropped, , drop = FALSE] else dat
  fam <- family(m)

  ## predict newdata: first 5 used rows (model columns only) + unseen-level row(s)
  nd_cols <- names(cs$newrows[[1]])
  nd <- used[1:5, nd_cols, drop = FALSE]
  for (j in nd_cols) if (is.factor(nd[[j]])) nd[[j]] <- as.character(nd[[j]])
  nd <- do.call(rbind, c(list(nd), cs$newrows))
  rownames(nd) <- NULL
  lk_re <- predict(m, newdata = nd, type = "link", allow.new.levels = TRUE)
  lk_fe <- predict(m, newdata = nd, type = "link", re.form = NA)
  rs_re <- predict(m, newdata = nd, type = "response", allow.new.levels = TRUE)
  rs_fe <- predict(m, newdata = nd, type = "response", re.form = NA)
  eta10 <- predict(m, type = "link")
  pred_extra <- list()
  if (!is.null(cs$offset)) {
    ## lme4 predict(newdata=) ignores an offset passed via the `offset=` argument
    ## (it only honours offset() terms in the formula).  Store predictions including
    ## the offset; check against the formula-offset model.
    f_off <- update(cs$formula, as.formula(paste(". ~ . + offset(", cs$offset, ")")))
    m_off <- fit_one(cs, ctrl_tight[[best]], tight = TRUE, formula = f_off, offset = NULL)$value
    stopifnot(isTRUE(all.equal(fixef(m), fixef(m_off), tolerance = 1e-6)))
    pred_extra <- list(offset_included = TRUE,
                       lme4_raw_link_with_re = vec(lk_re), lme4_raw_link_fixed_only = vec(lk_fe),
                       lme4_raw_response_with_re = vec(rs_re), lme4_raw_response_fixed_only = vec(rs_fe))
    ## use m's own coefficients; m_off only verifies the offset handling
    lk_re <- lk_re + nd[[cs$offset]]
    lk_fe <- lk_fe + nd[[cs$offset]]
    rs_re <- fam$linkinv(lk_re)
    rs_fe <- fam$linkinv(lk_fe)
    chk <- function(a, b) stopifnot(isTRUE(all.equal(unname(a), unname(b), tolerance = 1e-5)))
    chk(lk_re, predict(m_off, newdata = nd, type = "link", allow.new.levels = TRUE))
    chk(lk_fe, predict(m_off, newdata = nd, type = "link", re.form = NA))
    chk(rs_re, predict(m_off, newdata = nd, type = "response", allow.new.levels = TRUE))
    chk(rs_fe, predict(m_off, newdata = nd, type = "response", re.form = NA))
    chk(eta10, predict(m_off, type = "link"))   # fitted-data eta includes the offset
  }

  ranef_out <- ranef_json(m)

  varcorr <- varcorr_json(m)

  fe <- fixef(m)
  hess_avail <- !is.null(h <- m@optinfo$derivs$Hessian) && nrow(h) > length(getME(m, "theta"))
  V <- as.matrix(vcov(m)); dimnames(V) <- NULL
  Vrx <- as.matrix(suppressWarnings(vcov(m, use.hessian = FALSE))); dimnames(Vrx) <- NULL
  stopifnot(isTRUE(all.equal(V, unname(as.matrix(summary(m)$vcov)))))
  lower <- getME(m, "lower")
  lower[is.infinite(lower)] <- NA   # -> null
  ng <- ngrps(m)
  ll <- logLik(m)

  is_nb <- identical(cs$family, "nb")
  out <- list(
    case = cs$case,
    r_call = r_call_string(cs),
    data = cs$data_path,
    python = list(formula = cs$py_formula, random = vec(cs$py_random),
                  family = cs$py_family, link = cs$py_link,
                  weights = if (is.null(cs$weights)) NA else cs$weights,
                  offset = if (is.null(cs$offset)) NA else cs$offset,
                  nAGQ = cs$nAGQ,
                  response = if (is.null(cs$response)) NA else cs$response),
    family = cs$py_family, link = fam$link, r_family = fam$family, nAGQ = cs$nAGQ,
    nb_theta = if (is_nb) getME(m, "glmer.nb.theta") else NA,
    nobs = nobs(m),
    ngroups = as.list(setNames(as.integer(ng), names(ng))),
    fixef = list(names = vec(names(fe)), values = vec(fe)),
    se = vec(sqrt(diag(V))),
    vcov = V,
    vcov_source = if (hess_avail) "hessian" else "rx",
    se_precise = if (is.null(Vp <- precise_vcov(cs, m))) NA else vec(sqrt(diag(Vp))),
    se_rx = vec(sqrt(diag(Vrx))),
    vcov_rx = Vrx,
    theta = vec(getME(m, "theta")),
    theta_names = vec(names(getME(m, "theta"))),
    lower = vec(lower),
    sigma = sigma(m),
    varcorr = varcorr,
    loglik = as.numeric(ll),
    minus2loglik = -2 * as.numeric(ll),
    deviance = deviance(m),
    objective = objective(m),
    aic = AIC(m), bic = BIC(m), df = as.integer(attr(ll, "df")),
    is_singular = isSingular(m),
    ranef = ranef_out,
    fitted = vec(fitted(m)),
    eta_first10 = first10(eta10),
    residuals = list(response = first10(residuals(m, type = "response")),
                     pearson  = first10(residuals(m, type = "pearson")),
                     deviance = first10(residuals(m, type = "deviance"))),
    na_dropped = nrow(dat) - nobs(m),
    dropped_rows = vec(dropped),
    predict = c(list(newdata = lapply(as.list(nd), vec),
                     link_with_re = vec(lk_re), link_fixed_only = vec(lk_fe),
                     response_with_re = vec(rs_re), response_fixed_only = vec(rs_fe)),
                pred_extra),
    objective_exact = texact[[best]],
    laplace_check = if (cs$nAGQ == 1L && (is_nb || fam$family %in% c("binomial", "poisson")))
      laplace_check(m) else NA,
    default_fit = list(theta = vec(getME(m_def, "theta")), fixef = vec(fixef(m_def)),
                       objective = objective(m_def), objective_exact = def_exact[["value"]],
                       optimizer = m_def@optinfo$optimizer,
                       nb_theta = if (is_nb) getME(m_def, "glmer.nb.theta") else NA,
                       warnings = vec(fd$msgs)),
    r_seconds = fd$seconds,
    tight_fit = list(optimizer = best, tolPwrss = ctrl_tight[[best]]$tolPwrss,
                     candidates = as.list(tobj), candidates_exact = as.list(texact),
                     candidates_theta = lapply(tight, function(f) if (is.null(f$value)) NA else vec(getME(f$value, "theta"))),
                     candidates_fixef = lapply(tight, function(f) if (is.null(f$value)) NA else vec(fixef(f$value))),
                     candidates_nb_theta = if (is_nb) lapply(tight, function(f) if (is.null(f$value)) NA else getME(f$value, "glmer.nb.theta")) else NA,
                     exact_tolPwrss = exact_objective(cs, m)[["tolPwrss"]],
                     seconds = lapply(tight, function(f) f$seconds),
                     warnings = lapply(tight, function(f) vec(f$msgs))),
    warnings = vec(msgs),
    data_columns = vec(names(dat)),
    notes = vec(cs$notes)
  )
  if (!is_nb) { out$nb_theta <- NULL; out$default_fit$nb_theta <- NULL; out$tight_fit$candidates_nb_theta <- NULL }
  write_json(out, file.path(out_dir, paste0(cs$case, ".json")),
             digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null")

  summary_rows[[cs$case]] <- data.frame(
    case = cs$case, theta = paste(signif(getME(m, "theta"), 6), collapse = ","),
    loglik = as.numeric(ll), singular = isSingular(m), tight = best,
    def_gap = objective(m_def) - objective(m),
    def_gap_exact = def_exact[["value"]] - texact[[best]],
    brief_ctrl_gap = min(texact[c("bobyqa_pwrss1e-07", "nloptwrap_pwrss1e-07")], na.rm = TRUE) - texact[[best]],
    opt_gap = abs(texact[["bobyqa_pwrss1e-13"]] - texact[["nloptwrap_pwrss1e-13"]]),
    nobs = nobs(m), sec = fd$seconds)
}

cat("\nSummary\n")
smry <- do.call(rbind, summary_rows); rownames(smry) <- NULL
print(smry, digits = 10)
