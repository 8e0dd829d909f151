#!/usr/bin/env Rscript
## make_influence_reference.R -- lme4 reference values for interlace's influence diagnostics
## (hat values, Cook's distance, DFBETA, DFBETAS) and model checks (overdispersion, VIF).
##
## Generated with: R 4.2.2 Patched, lme4 1.1-31, car 3.1-1, jsonlite 1.8.4 (Debian
## packages); the versions are recorded in every JSON.
##
## Run from the repository root:
##     Rscript interlace/tests/reference/make_influence_reference.R
##
## It reads the bundled datasets (interlace/datasets/data/*.csv, written by
## make_lmer_reference.R / make_glmer_reference.R) and the simulated ones
## (interlace/tests/reference/data/*.csv) and (re)writes
##   interlace/tests/reference/influence/<case>.json
##
## JSON conventions (jsonlite::write_json, digits = NA, auto_unbox = TRUE): vectors are
## arrays even when of length 1; "r_call" holds the exact R calls; "data" the CSV the
## case was fitted on (relative to the repository root); "python" the interlace call.
##
## Two versions of every deletion diagnostic:
##   * "lme4": lme4's own influence.merMod(m, groups = ...) (or influence(m) for case
##     deletion) on the default fit, then cooks.distance(), dfbeta(), dfbetas() of that
##     object.  influence.merMod refits with lme4's default optimizer settings
##     (lmerControl()/glmerControl() with only maxfun changed), which leave the refits
##     loose: case-deletion Cook's distances of sleepstudy are off by up to 0.35 %
##     (relative, at the smallest values) and cbpp's group-deletion ones by 2.6 %
##     (glmer's default tolPwrss = 1e-7) from fully converged refits.
##   * "tight": the same definitions evaluated on fully converged fits: the full model
##     and every deletion refitted by this script with tight optimizer settings (lmer:
##     bobyqa rhoend = 1e-12; glmer: bobyqa rhoend = 1e-10 and tolPwrss = 1e-13),
##     each starting from the full fit's theta; for glmer the covariance of the fixed
##     effects is the inverse of half the central-difference Hessian (step 1e-3) of
##     lme4's deviance function (glmer(devFunOnly = TRUE), tolPwrss = 1e-13) in
##     (theta, beta), as interlace computes it (lme4's own vcov uses step 1e-4 on a
##     noisier deviance function).
##   The definitions (lme4 1.1-31, influence.merMod and its methods):
##     dfbeta_i   = beta(-i) - beta                      (deleted minus full)
##     dfbetas_i  = dfbeta_i / sqrt(diag(vcov(-i)))      (the refit's vcov)
##     cooks_i    = dfbeta_i' [ (k - p) / (k p) solve(vcov) ] dfbeta_i
##                  (vcov of the full fit, k = number of deleted units, p = fixed effects)
##   This script checks that its own implementation of them applied to lme4's
##   influence object reproduces cooks.distance()/dfbetas() to 1e-12.
## Units are listed as in lme4: unique(data[, groups]) order (row names for cases).
## hatvalues(): "lme4" on the default fit, "tight" on the tight fit (GLMM hat values
## raise lme4's warning "the hat matrix may not make sense for GLMMs").
##
## Checks: "overdispersion" is Bolker's GLMM FAQ overdisp_fun (as
## performance::check_overdispersion for merMod): Pearson chi-square
## sum(residuals(m, "pearson")^2), rdf = df.residual(m) = nobs - (fixed effects +
## theta), ratio chisq / rdf, p = pchisq(chisq, rdf, lower.tail = FALSE); on the tight
## fit.  "vif" is car::vif(m) (the GVIF of every term from the correlation matrix of
## vcov(m) without the intercept), checked against this script's own implementation.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
  library(car)
})

if (!file.exists("interlace/tests/reference/make_influence_reference.R"))
  stop("run this script from the repository root")
source("interlace/tests/reference/reference_helpers.R")

out_dir <- "interlace/tests/reference/influence"
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)

versions <- list(R = paste(R.version$major, R.version$minor, sep = "."),
                 lme4 = packageDescription("lme4")$Version,
                 car = packageDescription("car")$Version,
                 jsonlite = packageDescription("jsonlite")$Version)

lmer_tight  <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
glmer_tight <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5),
                            tolPwrss = 1e-13)

## ---------------------------------------------------------------------------
## data (from the CSVs; numeric codes that lme4 holds as factors made factors)
## ---------------------------------------------------------------------------
real_csv <- function(name) file.path("interlace/datasets/data", paste0(name, ".csv"))
as_factors <- function(df, cols) { for (c in cols) df[[c]] <- factor(df[[c]]); df }

sleep <- as_factors(read_csv_plain(real_csv("sleepstudy")), "Subject")
pen   <- read_csv_plain(real_csv("penicillin"))
cbpp_ <- as_factors(read_csv_plain(real_csv("cbpp")), c("herd", "period"))
grouse <- as_factors(read_csv_plain(real_csv("grouseticks")), c("YEAR", "BROOD", "LOCATION"))
cake_ <- as_factors(read_csv_plain(real_csv("cake")), c("replicate"))
wts   <- read_csv_plain("interlace/tests/reference/data/weights.csv")

## ---------------------------------------------------------------------------
## the definitions, written out (checked against lme4's methods below)
## ---------------------------------------------------------------------------
cooks_from <- function(dfb, vcov_full) {
  k <- nrow(dfb); p <- ncol(dfb)
  M <- (k - p) / (k * p) * solve(vcov_full)
  vapply(seq_len(k), function(i) drop(dfb[i, ] %*% M %*% dfb[i, ]), numeric(1))
}
dfbetas_from <- function(dfb, vcov_list)
  dfb / matrix(unlist(lapply(vcov_list, function(v) sqrt(diag(v)))), nrow(dfb), ncol(dfb), byrow = TRUE)

## lme4's dfbetas(inf) on the object; lme4 1.1-31's fails for a single fixed effect
## ("non-conformable arrays": its vapply() gives a vector), and then the definition is
## applied to the object's own vcov list (recorded in "notes")
lme4_dfbetas <- function(inf) {
  vl <- inf[[grep("^vcov\\[-", names(inf))]]
  tryCatch(dfbetas(inf), error = function(e) dfbetas_from(dfbeta(inf), vl))
}
lme4_dfbetas_note <- function(inf) {
  tryCatch({ dfbetas(inf); NULL }, error = function(e)
    paste0("lme4 1.1-31's dfbetas() fails here (", conditionMessage(e), "); lme4.dfbetas is ",
           "dfbeta(inf) / sqrt(diag(vcov[-unit])) from the influence object"))
}

check_definitions <- function(inf) {
  dfb <- dfbeta(inf)
  stopifnot(max(abs(cooks_from(dfb, inf$vcov) - cooks.distance(inf))) < 1e-12 * max(1, max(cooks.distance(inf))))
  vl <- inf[[grep("^vcov\\[-", names(inf))]]
  if (is.null(lme4_dfbetas_note(inf))) stopifnot(max(abs(dfbetas_from(dfb, vl) - dfbetas(inf))) < 1e-10)
  invisible(TRUE)
}

## glmer: vcov of the fixed effects from half the central-difference Hessian (step 1e-3)
## of lme4's deviance function in (theta, beta); theta on the boundary held fixed
glmer_vcov <- function(formula, data, family, m) {
  dfun <- suppressWarnings(glmer(formula, data = data, family = family, devFunOnly = TRUE,
                                 control = glmerControl(tolPwrss = 1e-13)))
  th <- getME(m, "theta"); par <- c(th, fixef(m)); k <- length(par); d <- 1e-3
  free <- which(!(seq_len(k) <= length(th) & par < 1e-4 & c(getME(m, "lower"), rep(-Inf, length(fixef(m)))) == 0))
  H <- matrix(0, length(free), length(free))
  for (a in seq_along(free)) for (b in seq_along(free)) {
    ea <- replace(numeric(k), free[a], d); eb <- replace(numeric(k), free[b], d)
    H[a, b] <- (dfun(par + ea + eb) - dfun(par + ea - eb) - dfun(par - ea + eb) + dfun(par - ea - eb)) / (4 * d * d)
  }
  V <- solve(H / 2)
  keep <- which(free > length(th))
  V <- V[keep, keep, drop = FALSE]
  dimnames(V) <- list(names(fixef(m)), names(fixef(m)))
  V
}

## one tight fit: fixef and vcov (the deletion refits start from theta0)
tight_fit <- function(formula, data, family = NULL, theta0 = NULL) {
  if (is.null(family)) {
    start <- if (is.null(theta0)) NULL else list(theta = theta0)
    m <- lmer(formula, data = data, REML = TRUE, control = lmer_tight, start = start)
    list(m = m, fixef = fixef(m), vcov = as.matrix(vcov(m)))
  } else {
    start <- if (is.null(theta0)) NULL else list(theta = theta0)
    m <- glmer(formula, data = data, family = family, control = glmer_tight, start = start)
    list(m = m, fixef = fixef(m), vcov = glmer_vcov(formula, data, family, m))
  }
}

## every deletion refitted tightly; units in lme4's order (unique() / row names)
tight_influence <- function(formula, data, family, full, groups) {
  units <- if (is.null(groups)) rownames(data) else as.character(unique(data[[groups]]))
  key <- if (is.null(groups)) rownames(data) else as.character(data[[groups]])
  th0 <- getME(full$m, "theta")
  fits <- lapply(units, function(u) tight_fit(formula, droplevels(data[key != u, ]), family, th0))
  B <- matrix(unlist(lapply(fits, function(f) f$fixef)), length(fits), length(full$fixef), byrow = TRUE,
              dimnames = list(units, names(full$fixef)))
  dfb <- B - matrix(full$fixef, nrow(B), ncol(B), byrow = TRUE)
  vl <- lapply(fits, function(f) f$vcov)
  list(units = units, cooks = cooks_from(dfb, full$vcov), dfbeta = dfb, dfbetas = dfbetas_from(dfb, vl),
       fixef_deleted = B,
       theta_deleted = matrix(unlist(lapply(fits, function(f) getME(f$m, "theta"))), length(fits), length(th0),
                              byrow = TRUE))
}

mat_json <- function(M) lapply(seq_len(ncol(M)), function(j) vec(M[, j]))
cols_json <- function(M, names) setNames(mat_json(M), names)

deletion_json <- function(units, cooks, dfb, dfbs, coef) {
  list(units = vec(units), cooks_distance = vec(cooks),
       dfbeta = cols_json(dfb, coef), dfbetas = cols_json(dfbs, coef))
}

write_case <- function(case, out) {
  out <- c(list(case = case, versions = versions), out)
  write_json(out, file.path(out_dir, paste0(case, ".json")), digits = NA, auto_unbox = TRUE, pretty = TRUE)
  cat("wrote", case, "\n")
}

fit_json <- function(m, vc) list(theta = vec(getME(m, "theta")), fixef = vec(fixef(m)),
                                 fixef_names = vec(names(fixef(m))), vcov = mat_json(vc))

## ---------------------------------------------------------------------------
## deletion cases
## ---------------------------------------------------------------------------
lmm_case <- function(case, formula, data, data_path, groups, python, obs = FALSE) {
  m <- eval(bquote(lmer(.(formula), data = data)))  # the formula inlined: influence() update()s the call
  inf <- if (obs) influence(m) else influence(m, groups = groups)
  check_definitions(inf)
  full <- tight_fit(formula, data)
  ti <- tight_influence(formula, data, NULL, full, if (obs) NULL else groups)
  coef <- names(fixef(m))
  units <- if (obs) rownames(data) else as.character(unique(data[[groups]]))
  stopifnot(identical(units, ti$units), identical(as.character(inf$deleted), units))
  rcall <- c(sprintf("m <- lmer(%s, data = %s)", deparse1(formula), data_path$r_name),
             if (obs) "inf <- influence(m)" else sprintf("inf <- influence(m, groups = \"%s\")", groups),
             "cooks.distance(inf); dfbeta(inf); dfbetas(inf); hatvalues(m)")
  write_case(case, list(
    r_call = rcall, data = data_path$csv, python = python, deleted = if (obs) "observation" else groups,
    nobs = nrow(data),
    fit = fit_json(m, as.matrix(vcov(m))), fit_tight = fit_json(full$m, full$vcov),
    hatvalues = list(lme4 = vec(hatvalues(m)), tight = vec(hatvalues(full$m))),
    lme4 = c(deletion_json(units, cooks.distance(inf), dfbeta(inf), lme4_dfbetas(inf), coef),
             list(converged = vec(inf$converged), function_evals = vec(inf$function.evals))),
    tight = c(deletion_json(units, ti$cooks, ti$dfbeta, ti$dfbetas, coef),
              list(theta_deleted = mat_json(ti$theta_deleted))),
    notes = lme4_dfbetas_note(inf)))
}

lmm_case("sleepstudy_subject", Reaction ~ Days + (Days | Subject), sleep,
         list(csv = "interlace/datasets/data/sleepstudy.csv", r_name = "sleepstudy"), "Subject",
         list(formula = "Reaction ~ Days", random = vec("(Days | Subject)"), groups = "Subject"))
lmm_case("sleepstudy_obs", Reaction ~ Days + (Days | Subject), sleep,
         list(csv = "interlace/datasets/data/sleepstudy.csv", r_name = "sleepstudy"), NULL,
         list(formula = "Reaction ~ Days", random = vec("(Days | Subject)"), groups = NULL), obs = TRUE)
lmm_case("penicillin_plate", diameter ~ 1 + (1 | plate) + (1 | sample), pen,
         list(csv = "interlace/datasets/data/penicillin.csv", r_name = "Penicillin"), "plate",
         list(formula = "diameter ~ 1", random = vec(c("(1 | plate)", "(1 | sample)")), groups = "plate"))

## binomial GLMM: group deletion of the herds
local({
  f <- cbind(incidence, size - incidence) ~ period + (1 | herd)
  gm <- eval(bquote(glmer(.(f), data = cbpp_, family = binomial)))
  inf <- influence(gm, groups = "herd")
  check_definitions(inf)
  full <- tight_fit(f, cbpp_, binomial)
  ti <- tight_influence(f, cbpp_, binomial, full, "herd")
  coef <- names(fixef(gm))
  units <- as.character(unique(cbpp_$herd))
  hat_warn <- tryCatch({ hatvalues(gm); "" }, warning = function(w) conditionMessage(w))
  write_case("cbpp_herd", list(
    r_call = c("gm <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), data = cbpp, family = binomial)",
               "inf <- influence(gm, groups = \"herd\")",
               "cooks.distance(inf); dfbeta(inf); dfbetas(inf); hatvalues(gm)"),
    data = "interlace/datasets/data/cbpp.csv",
    python = list(formula = "cbind(incidence, size - incidence) ~ period", random = vec("(1 | herd)"),
                  family = "binomial", groups = "herd", factors = vec("period")),
    deleted = "herd", nobs = nrow(cbpp_),
    fit = fit_json(gm, as.matrix(vcov(gm))), fit_tight = fit_json(full$m, full$vcov),
    hatvalues = list(lme4 = vec(suppressWarnings(hatvalues(gm))), tight = vec(suppressWarnings(hatvalues(full$m))),
                     warning = hat_warn),
    lme4 = c(deletion_json(units, cooks.distance(inf), dfbeta(inf), lme4_dfbetas(inf), coef),
             list(converged = vec(inf$converged), function_evals = vec(inf$function.evals))),
    tight = c(deletion_json(units, ti$cooks, ti$dfbeta, ti$dfbetas, coef),
              list(theta_deleted = mat_json(ti$theta_deleted))),
    notes = lme4_dfbetas_note(inf)))
})

## prior weights: hat values only
local({
  f <- y ~ x + (1 | g)
  m <- lmer(f, data = wts, weights = w)
  mt <- lmer(f, data = wts, weights = w, control = lmer_tight)
  write_case("weights_hat", list(
    r_call = c("m <- lmer(y ~ x + (1 | g), data = weights, weights = w)", "hatvalues(m)"),
    data = "interlace/tests/reference/data/weights.csv",
    python = list(formula = "y ~ x", random = vec("(1 | g)"), weights = "w"),
    nobs = nrow(wts), fit = fit_json(m, as.matrix(vcov(m))), fit_tight = fit_json(mt, as.matrix(vcov(mt))),
    hatvalues = list(lme4 = vec(hatvalues(m)), tight = vec(hatvalues(mt)))))
})

## ---------------------------------------------------------------------------
## checks: overdispersion (Pearson) and VIF
## ---------------------------------------------------------------------------
overdisp <- function(m) {
  rdf <- df.residual(m)
  chisq <- sum(residuals(m, type = "pearson")^2)
  list(chisq = chisq, ratio = chisq / rdf, rdf = rdf, p = pchisq(chisq, df = rdf, lower.tail = FALSE),
       nobs = nobs(m), npar = nobs(m) - rdf)
}

## GVIF of every term: det(R_t) det(R_-t) / det(R) on the correlation of vcov without the intercept
own_vif <- function(m) {
  v <- as.matrix(vcov(m))[-1, -1]
  assign <- attr(model.matrix(m), "assign")[-1]
  R <- cov2cor(v)
  labs <- labels(terms(m))
  g <- vapply(seq_along(labs), function(t) {
    s <- which(assign == t)
    det(R[s, s, drop = FALSE]) * det(R[-s, -s, drop = FALSE]) / det(R)
  }, numeric(1))
  df <- vapply(seq_along(labs), function(t) sum(assign == t), numeric(1))
  list(terms = labs, gvif = g, df = df, gvif_adj = g^(1 / (2 * df)))
}

vif_json <- function(m) {
  own <- own_vif(m)
  cv <- car::vif(m)
  g_car <- if (is.matrix(cv)) cv[, 1] else cv
  stopifnot(max(abs(g_car - own$gvif) / own$gvif) < 1e-12, identical(names(g_car), own$terms))
  list(terms = vec(own$terms), gvif = vec(own$gvif), df = vec(own$df), gvif_adj = vec(own$gvif_adj),
       car_vif = if (is.matrix(cv)) mat_json(cv) else vec(cv))
}

local({
  f <- TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)
  m <- glmer(f, data = grouse, family = poisson, control = glmer_tight)
  md <- glmer(f, data = grouse, family = poisson)
  vc <- glmer_vcov(f, grouse, poisson, m)
  write_case("grouseticks_checks", list(
    r_call = c("m <- glmer(TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION), data = grouseticks, family = poisson, control = glmerControl(optimizer = \"bobyqa\", optCtrl = list(rhoend = 1e-10, maxfun = 1e5), tolPwrss = 1e-13))",
               "rdf <- df.residual(m); chisq <- sum(residuals(m, type = \"pearson\")^2); pchisq(chisq, rdf, lower.tail = FALSE)",
               "car::vif(m)"),
    data = "interlace/datasets/data/grouseticks.csv",
    python = list(formula = "TICKS ~ YEAR + cHEIGHT", random = vec(c("(1 | BROOD)", "(1 | LOCATION)")),
                  family = "poisson", factors = vec("YEAR")),
    fit_tight = fit_json(m, vc), overdispersion = overdisp(m), overdispersion_default_fit = overdisp(md),
    vif = vif_json(m), singular = isSingular(m)))
})

local({
  f <- cbind(incidence, size - incidence) ~ period + (1 | herd)
  m <- glmer(f, data = cbpp_, family = binomial, control = glmer_tight)
  write_case("cbpp_checks", list(
    r_call = c("m <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), data = cbpp, family = binomial, control = <tight>)",
               "rdf <- df.residual(m); chisq <- sum(residuals(m, type = \"pearson\")^2); pchisq(chisq, rdf, lower.tail = FALSE)"),
    data = "interlace/datasets/data/cbpp.csv",
    python = list(formula = "cbind(incidence, size - incidence) ~ period", random = vec("(1 | herd)"),
                  family = "binomial", factors = vec("period")),
    fit_tight = fit_json(m, glmer_vcov(f, cbpp_, binomial, m)), overdispersion = overdisp(m),
    singular = isSingular(m)))
})

local({
  f <- angle ~ recipe * temp + (1 | recipe:replicate)
  m <- lmer(f, data = cake_, control = lmer_tight)
  write_case("cake_vif", list(
    r_call = c("m <- lmer(angle ~ recipe * temp + (1 | recipe:replicate), data = cake, control = <tight>)",
               "car::vif(m)"),
    data = "interlace/datasets/data/cake.csv",
    python = list(formula = "angle ~ recipe * temp", random = vec("(1 | recipe:replicate)")),
    fit_tight = fit_json(m, as.matrix(vcov(m))), vif = vif_json(m), singular = isSingular(m)))
})
