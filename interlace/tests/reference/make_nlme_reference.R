#!/usr/bin/env Rscript
## make_nlme_reference.R -- nlme reference values for the interlace "residual
## correlation structures" feature (corAR1, corCAR1, corCompSymm, varIdent).
##
## Generated with: R 4.2.2 Patched (2022-11-10 r83330), nlme 3.1-162, jsonlite 1.8.4
## (Debian packages).  Other versions may give slightly different fits.
##
## Run from the repository root:
##     Rscript interlace/tests/reference/make_nlme_reference.R
##
## It (re)writes
##   interlace/tests/reference/data/nlme_ovary.csv       nlme::Ovary (+ s1, c1)
##   interlace/tests/reference/data/nlme_bodyweight.csv  nlme::BodyWeight
##   interlace/tests/reference/data/nlme_orthodont.csv   nlme::Orthodont
##   interlace/tests/reference/nlme/<case>.json          one JSON per case
##
## Data provenance: the three datasets are the groupedData objects shipped with the
## R package nlme 3.1-162 (Pinheiro & Bates 2000, "Mixed-Effects Models in S and
## S-PLUS"), written as plain data frames in their original row order:
##   Ovary      (308 rows) Mare = mare id (11 levels); Time = time in estrus cycle
##              (scaled so ovulations are at 0 and 1); follicles = number of ovarian
##              follicles > 10 mm.  Added columns s1 = sin(2*pi*Time),
##              c1 = cos(2*pi*Time) so the Python side needs no formula expressions.
##   BodyWeight (176 rows) weight = body weight (g); Time = day (1, 8, 15, ..., 44,
##              50, ..., 64; irregular spacing: days 43 and 44 both present);
##              Rat = rat id (16 levels); Diet = diet (1, 2, 3).
##   Orthodont  (108 rows) distance = pituitary-pterygomaxillary fissure distance
##              (mm); age = age (yr, 8/10/12/14); Subject = subject (M01..F11);
##              Sex = Male/Female.
##
## CSV conventions (same as make_lmer_reference.R): header row, no row names, no
## quoting, factors as their labels, missing values (none here) as EMPTY fields.
## Numbers are written by write.csv (15 significant digits), so e.g. Ovary Time and
## s1/c1 do not round-trip to the last bit.  The data are therefore READ BACK from
## the CSV and every model is fitted on the read-back data frame (plain data.frame,
## factors with alphabetical levels, i.e. what a CSV reader gives).  The script checks
## that (a) the read-back data equal the nlme objects to 1e-12, and (b) the logLik
## of each fit equals the logLik of the same model fitted to the original nlme
## object (with sin(2*pi*Time)/cos(2*pi*Time) written out) to 1e-8 relative.
## Factor columns are listed in each JSON's "factor_columns": Ovary Mare, BodyWeight
## Rat and Diet have numeric-looking labels but are factors (read as strings in
## Python; Diet levels "1" < "2" < "3" give coefficients Diet2, Diet3, Time:Diet2, ...).
## Factor level order matters for coefficient names: Orthodont's Sex is read back
## with levels Female < Male, so the coefficients are "SexMale", "age:SexMale"
## (the nlme object has Male < Female).  BodyWeight Diet levels are 1 < 2 < 3.
##
## Row order matters: corAR1 / corCompSymm without a time covariate use the order
## of the rows within each group (as in the CSV); corCAR1 uses the Time column.
## varIdent's reference stratum (ratio fixed at 1) is the stratum of the FIRST data
## row (Orthodont: "Male"), recorded in "varident$reference".
##
## Fits: tight control
##   lmeControl(msMaxIter = 1000, tolerance = 1e-10, msTol = 1e-12, niterEM = 100)
##   glsControl(msMaxIter = 1000, tolerance = 1e-10, msTol = 1e-12)
## with opt = "nlminb" (the default) and opt = "optim"; the one with the larger
## logLik is kept ("tight_fit": chosen optimizer, candidate logLiks, control used).
## A default-control fit is recorded under "default_fit" for comparison.  If a tight
## fit errors, the next looser control in `ctrl_ladder` is tried and recorded.
##
## JSON conventions (jsonlite::write_json, digits = NA, auto_unbox = TRUE):
##   * every vector-valued field is a JSON array, even when of length 1;
##   * R NA / NULL are written as null;
##   * "loglik" is the REML log-likelihood for REML fits.  nlme's REML logLik uses
##     the same convention as lme4 (-REMLcrit/2; checked: sleepstudy lme vs lmer agree
##     to 1e-9), including the -0.5*log|X' V^-1 X| term, so it changes if the columns
##     of X are rescaled -- use exactly the s1/c1 columns / treatment contrasts;
##   * "corstruct$value" = coef(m$modelStruct$corStruct, unconstrained = FALSE)
##     (Phi for AR1/CAR1, Rho for CompSymm); "unconstrained" = nlme's internal
##     parameterisation (AR1: log((1+phi)/(1-phi)); CAR1: log(phi/(1-phi));
##     CompSymm: log((rho + 1/(n-1)) / (1 - rho)) with n = max group size);
##   * "varident$ratios" = coef(varStruct, unconstrained = FALSE, allCoef = TRUE),
##     i.e. sd(stratum)/sd(reference), reference first with value 1;
##   * "varcorr" (lme only): per random-effect term the SD, and the correlation
##     matrix of the random effects; "sigma" = residual SD (for varIdent: SD of the
##     reference stratum);
##   * "fitted" = first 10 fitted values in data row order (lme: level 1, i.e. with
##     random effects, plus "fitted_fixed" = level 0); "residuals" likewise;
##   * "intervals" = intervals(m, which = "var-cov") (lower, est, upper) for every
##     component it reports; if it errors, "intervals$error" holds the message;
##   * "intervals_relstep_1e4" = the same from a refit with control .relStep = 1e-4:
##     nlme's default finite-difference step (eps^(1/3) times the parameter, fdHess)
##     is too small for parameters near 0 (gls_cs: lower bound 0.2242 at the default,
##     0.2355 at 1e-4, 0.2369 at 1e-3, where the quadratic fit's error grows again);
##     the Python tests compare to this one at 1e-3;
##   * "intervals_richardson" = the same from a refit in which nlme's fdHess (the
##     quadratic-fit Hessian behind apVar) is replaced by numDeriv's Richardson-
##     extrapolated gradient and Hessian (numDeriv::grad / hessian, default settings):
##     no step to choose, accurate to ~1e-8 where the .relStep ones are not even to
##     1e-3 (gls_cs: 0.23553 at .relStep 1e-4, 0.23541 here); the Python tests compare
##     to this one at 1e-4.  numDeriv 2016.8-1.1 (Debian package);
##   * "anova_marginal" = anova(m, type = "marginal"): per term numDF, denDF (lme), F, p;
##   * "anova_vs_independent" (lme_ar1, lme_ar1_ml): anova(m0, m1), m0 = same model
##     with no correlation structure (same method).
##   * "model_struct_unconstrained" = coef(m$modelStruct) (nlme's optimisation
##     parameters, all components) -- handy for checking a Python objective.

suppressPackageStartupMessages({
  library(nlme)
  library(jsonlite)
})

if (!file.exists("interlace/tests/reference/make_nlme_reference.R"))
  stop("run this script from the repository root")

data_dir <- "interlace/tests/reference/data"
out_dir  <- "interlace/tests/reference/nlme"
for (d in c(data_dir, out_dir)) dir.create(d, recursive = TRUE, showWarnings = FALSE)

nlme_version <- packageDescription("nlme")$Version

## ---------------------------------------------------------------------------
## CSV helpers (as in make_lmer_reference.R)
## ---------------------------------------------------------------------------
check_labels <- function(df) {
  for (nm in names(df)) {
    v <- df[[nm]]
    if (is.factor(v) || is.character(v)) {
      lab <- as.character(v)
      if (any(grepl("[,\"\n]", lab[!is.na(lab)]))) stop("label with comma/quote in ", nm)
      if (any(lab[!is.na(lab)] == "")) stop("empty label in ", nm)
    }
  }
  invisible(TRUE)
}

write_csv_plain <- function(df, path) {
  check_labels(df)
  con <- file(path, "w")
  on.exit(close(con))
  write.csv(df, con, row.names = FALSE, quote = FALSE, na = "")
}

## `factors`: columns read as factors even when their labels look numeric
## (Ovary Mare, BodyWeight Rat and Diet); they are listed in "factor_columns"
read_csv_plain <- function(path, factors = character()) {
  cc <- setNames(rep("factor", length(factors)), factors)
  read.csv(path, stringsAsFactors = TRUE, na.strings = "", colClasses = cc)
}

## read-back data must equal the original (labels exactly, numbers to 1e-12)
check_close <- function(orig, back, path) {
  stopifnot(identical(names(back), names(orig)), nrow(back) == nrow(orig))
  for (nm in names(orig)) {
    v <- orig[[nm]]
    if (is.numeric(v)) {
      if (max(abs(back[[nm]] - v)) > 1e-12) stop("numeric read-back mismatch: ", path, " ", nm)
    } else if (!identical(as.character(back[[nm]]), as.character(v))) {
      stop("label read-back mismatch: ", path, " ", nm)
    }
  }
}

plain <- function(gd) {
  df <- as.data.frame(gd)
  attributes(df) <- attributes(df)[c("names", "row.names", "class")]
  class(df) <- "data.frame"
  for (nm in names(df)) if (is.factor(df[[nm]])) df[[nm]] <- as.character(df[[nm]])
  rownames(df) <- NULL
  df
}

## ---------------------------------------------------------------------------
## 1. datasets
## ---------------------------------------------------------------------------
ovary0 <- plain(nlme::Ovary)[, c("Mare", "Time", "follicles")]
ovary0$s1 <- sin(2 * pi * ovary0$Time)
ovary0$c1 <- cos(2 * pi * ovary0$Time)
bw0 <- plain(nlme::BodyWeight)[, c("weight", "Time", "Rat", "Diet")]
orth0 <- plain(nlme::Orthodont)[, c("distance", "age", "Subject", "Sex")]

datasets <- list(ovary = ovary0, bodyweight = bw0, orthodont = orth0)
factor_cols <- list(ovary = "Mare", bodyweight = c("Rat", "Diet"), orthodont = c("Subject", "Sex"))
dat <- list()
for (nm in names(datasets)) {
  path <- file.path(data_dir, paste0("nlme_", nm, ".csv"))
  write_csv_plain(datasets[[nm]], path)
  dat[[nm]] <- read_csv_plain(path, factor_cols[[nm]])
  check_close(datasets[[nm]], dat[[nm]], path)
}
data_path <- function(nm) file.path(data_dir, paste0("nlme_", nm, ".csv"))

## ---------------------------------------------------------------------------
## 2. cases
## ---------------------------------------------------------------------------
## `call` is evaluated with `d` = read-back CSV data and `ctrl` = control object;
## `orig_call` is the same model on the original nlme groupedData object.
cases <- list(
  list(case = "gls_ar1", fun = "gls", dataset = "ovary", reml = TRUE,
       call = quote(gls(follicles ~ s1 + c1, data = d, correlation = corAR1(form = ~ 1 | Mare),
                        method = METHOD, control = ctrl)),
       orig_call = quote(gls(follicles ~ sin(2*pi*Time) + cos(2*pi*Time), data = Ovary,
                             correlation = corAR1(form = ~ 1 | Mare), method = METHOD)),
       r_call = "gls(follicles ~ sin(2*pi*Time) + cos(2*pi*Time), data = Ovary, correlation = corAR1(form = ~ 1 | Mare), method = \"REML\")  # fitted as follicles ~ s1 + c1",
       python = list(formula = "follicles ~ s1 + c1", random = NA,
                     correlation = list(type = "AR1", time = NA, group = "Mare"),
                     weights = NA)),
  list(case = "gls_cs", fun = "gls", dataset = "ovary", reml = TRUE,
       call = quote(gls(follicles ~ s1 + c1, data = d, correlation = corCompSymm(form = ~ 1 | Mare),
                        method = METHOD, control = ctrl)),
       orig_call = quote(gls(follicles ~ sin(2*pi*Time) + cos(2*pi*Time), data = Ovary,
                             correlation = corCompSymm(form = ~ 1 | Mare), method = METHOD)),
       r_call = "gls(follicles ~ sin(2*pi*Time) + cos(2*pi*Time), data = Ovary, correlation = corCompSymm(form = ~ 1 | Mare), method = \"REML\")  # fitted as follicles ~ s1 + c1",
       python = list(formula = "follicles ~ s1 + c1", random = NA,
                     correlation = list(type = "CompoundSymmetry", time = NA, group = "Mare"),
                     weights = NA)),
  list(case = "lme_ar1", fun = "lme", dataset = "ovary", reml = TRUE,
       call = quote(lme(follicles ~ s1 + c1, data = d, random = ~ 1 | Mare,
                        correlation = corAR1(), method = METHOD, control = ctrl)),
       null_call = quote(lme(follicles ~ s1 + c1, data = d, random = ~ 1 | Mare,
                             method = METHOD, control = ctrl)),
       orig_call = quote(lme(follicles ~ sin(2*pi*Time) + cos(2*pi*Time), data = Ovary,
                             random = ~ 1 | Mare, correlation = corAR1(), method = METHOD)),
       r_call = "lme(follicles ~ sin(2*pi*Time) + cos(2*pi*Time), data = Ovary, random = ~ 1 | Mare, correlation = corAR1(), method = \"REML\")  # fitted as follicles ~ s1 + c1",
       python = list(formula = "follicles ~ s1 + c1", random = I("(1 | Mare)"),
                     correlation = list(type = "AR1", time = NA, group = "Mare"),
                     weights = NA)),
  list(case = "lme_ar1_ml", fun = "lme", dataset = "ovary", reml = FALSE,
       call = quote(lme(follicles ~ s1 + c1, data = d, random = ~ 1 | Mare,
                        correlation = corAR1(), method = METHOD, control = ctrl)),
       null_call = quote(lme(follicles ~ s1 + c1, data = d, random = ~ 1 | Mare,
                             method = METHOD, control = ctrl)),
       orig_call = quote(lme(follicles ~ sin(2*pi*Time) + cos(2*pi*Time), data = Ovary,
                             random = ~ 1 | Mare, correlation = corAR1(), method = METHOD)),
       r_call = "lme(follicles ~ sin(2*pi*Time) + cos(2*pi*Time), data = Ovary, random = ~ 1 | Mare, correlation = corAR1(), method = \"ML\")  # fitted as follicles ~ s1 + c1",
       python = list(formula = "follicles ~ s1 + c1", random = I("(1 | Mare)"),
                     correlation = list(type = "AR1", time = NA, group = "Mare"),
                     weights = NA)),
  list(case = "lme_car1", fun = "lme", dataset = "bodyweight", reml = TRUE,
       call = quote(lme(weight ~ Time * Diet, data = d, random = ~ Time | Rat,
                        correlation = corCAR1(form = ~ Time), method = METHOD, control = ctrl)),
       orig_call = quote(lme(weight ~ Time * Diet, data = BodyWeight, random = ~ Time | Rat,
                             correlation = corCAR1(form = ~ Time), method = METHOD)),
       r_call = "lme(weight ~ Time * Diet, data = BodyWeight, random = ~ Time | Rat, correlation = corCAR1(form = ~ Time), method = \"REML\")",
       python = list(formula = "weight ~ Time * Diet", random = I("(Time | Rat)"),
                     correlation = list(type = "CAR1", time = "Time", group = "Rat"),
                     weights = NA)),
  list(case = "gls_varident", fun = "gls", dataset = "orthodont", reml = TRUE,
       call = quote(gls(distance ~ age * Sex, data = d, weights = varIdent(form = ~ 1 | Sex),
                        method = METHOD, control = ctrl)),
       orig_call = quote(gls(distance ~ age * Sex, data = Orthodont,
                             weights = varIdent(form = ~ 1 | Sex), method = METHOD)),
       r_call = "gls(distance ~ age * Sex, data = Orthodont, weights = varIdent(form = ~ 1 | Sex), method = \"REML\")",
       python = list(formula = "distance ~ age * Sex", random = NA,
                     correlation = NA,
                     weights = list(type = "VarIdent", by = "Sex")))
)

## ---------------------------------------------------------------------------
## 3. fitting helpers
## ---------------------------------------------------------------------------
capture <- function(expr) {
  msgs <- character()
  val <- tryCatch(withCallingHandlers(expr,
    warning = function(w) { msgs <<- c(msgs, paste("warning:", conditionMessage(w)))
                            invokeRestart("muffleWarning") },
    message = function(m) { msgs <<- c(msgs, paste("message:", trimws(conditionMessage(m))))
                            invokeRestart("muffleMessage") }),
    error = function(e) structure(conditionMessage(e), class = "fit_error"))
  list(value = val, msgs = msgs)
}

## control ladder: tightest first; looser ones only used if the tighter one errors
ctrl_ladder <- list(
  lme = list(
    tight = list(msMaxIter = 1000, tolerance = 1e-10, msTol = 1e-12, niterEM = 100),
    medium = list(msMaxIter = 1000, tolerance = 1e-8, msTol = 1e-10, niterEM = 100),
    loose = list(msMaxIter = 1000, tolerance = 1e-6, msTol = 1e-7, niterEM = 100)),
  gls = list(
    tight = list(msMaxIter = 1000, tolerance = 1e-10, msTol = 1e-12),
    medium = list(msMaxIter = 1000, tolerance = 1e-8, msTol = 1e-10),
    loose = list(msMaxIter = 1000, tolerance = 1e-6, msTol = 1e-7))
)
make_ctrl <- function(fun, args, opt) {
  args$opt <- opt
  if (fun == "lme") do.call(lmeControl, args) else do.call(glsControl, args)
}

fit_call <- function(cl, d, ctrl, method) {
  cl <- do.call(substitute, list(cl, list(METHOD = method)))
  capture(eval(cl, list(d = d, ctrl = ctrl), environment()))
}

## returns list(model, msgs, control_name, control_args, optimizer, candidates, tried)
fit_tight <- function(cs, cl, d, method) {
  tried <- list()
  for (lvl in names(ctrl_ladder[[cs$fun]])) {
    args <- ctrl_ladder[[cs$fun]][[lvl]]
    fits <- lapply(c(nlminb = "nlminb", optim = "optim"),
                   function(o) fit_call(cl, d, make_ctrl(cs$fun, args, o), method))
    ll <- vapply(fits, function(f) if (inherits(f$value, "fit_error")) NA_real_
                                   else as.numeric(logLik(f$value)), numeric(1))
    tried[[lvl]] <- lapply(fits, function(f) if (inherits(f$value, "fit_error"))
      paste("error:", unclass(f$value)) else as.numeric(logLik(f$value)))
    if (all(is.na(ll))) next
    best <- names(ll)[which.max(ll)]
    return(list(model = fits[[best]]$value, msgs = fits[[best]]$msgs, control_name = lvl,
                control_args = args, optimizer = best, candidates = as.list(ll),
                tried = tried))
  }
  stop("all controls failed for ", cs$case, ": ", paste(unlist(tried), collapse = "; "))
}

vec <- function(x) I(unname(as.vector(x)))   # keep as JSON array even if length 1
mat <- function(M) { M <- as.matrix(M); dimnames(M) <- NULL; M }

interval_block <- function(m) {
  iv <- tryCatch(intervals(m, which = "var-cov"), error = function(e) e)
  if (inherits(iv, "error")) return(list(error = conditionMessage(iv)))
  tab <- function(x) {
    x <- as.matrix(x)
    if (ncol(x) == 1) x <- t(x)   # named vector (sigma) -> 1 x 3
    list(names = vec(if (is.null(rownames(x))) "sigma" else rownames(x)),
         lower = vec(x[, "lower"]), est = vec(x[, "est."]), upper = vec(x[, "upper"]))
  }
  out <- list(level = attr(iv, "level"))
  if (!is.null(iv$reStruct)) out$reStruct <- lapply(iv$reStruct, tab)
  if (!is.null(iv$corStruct)) out$corStruct <- tab(iv$corStruct)
  if (!is.null(iv$varStruct)) out$varStruct <- tab(iv$varStruct)
  if (!is.null(iv$sigma)) {
    s <- iv$sigma
    out$sigma <- list(lower = unname(s["lower"]), est = unname(s["est."]), upper = unname(s["upper"]))
  }
  out
}

## evaluate expr with nlme's fdHess replaced by Richardson-extrapolated derivatives
## (see "intervals_richardson" above); the original is restored afterwards
fdHess_richardson <- function(pars, fun, ..., .relStep = .Machine$double.eps^(1/3), minAbsPar = 0) {
  f <- function(p) fun(p, ...)
  list(mean = f(pars), gradient = numDeriv::grad(f, pars), Hessian = numDeriv::hessian(f, pars))
}
with_richardson_fdHess <- function(expr) {
  orig <- get("fdHess", envir = asNamespace("nlme"))
  assignInNamespace("fdHess", fdHess_richardson, "nlme")
  on.exit(assignInNamespace("fdHess", orig, "nlme"))
  force(expr)
}

varcorr_block <- function(m) {
  vc <- VarCorr(m)
  re <- m$modelStruct$reStruct
  lapply(names(re), function(g) {
    pd <- re[[g]]
    V <- as.matrix(pd) * m$sigma^2
    sds <- sqrt(diag(V))
    R <- V / outer(sds, sds)
    list(grp = g, terms = vec(rownames(V)), sd = vec(sds), var = vec(diag(V)),
         corr = mat(R), cov = mat(V))
  })
}

anova_block <- function(m0, m1) {
  a <- anova(m0, m1)
  list(models = vec(c("no_correlation", "ar1")),
       df = vec(as.integer(a$df)), aic = vec(a$AIC), bic = vec(a$BIC),
       loglik = vec(a$logLik), test = vec(as.character(a$Test)),
       l_ratio = vec(a$L.Ratio), p_value = vec(a[["p-value"]]))
}

## ---------------------------------------------------------------------------
## 4. run cases
## ---------------------------------------------------------------------------
summary_rows <- list()
for (cs in cases) {
  cat("==", cs$case, "\n")
  method <- if (cs$reml) "REML" else "ML"
  d <- dat[[cs$dataset]]
  ft <- fit_tight(cs, cs$call, d, method)
  m <- ft$model
  if (length(ft$msgs)) cat("  tight fit:", ft$msgs, sep = "\n    ")
  ## default-control fit (same call, default control)
  dflt <- fit_call(cs$call, d, if (cs$fun == "lme") lmeControl() else glsControl(), method)
  ## same model on the original nlme object -- sanity check of the CSV / s1,c1 route
  orig <- fit_call(cs$orig_call, NULL, NULL, method)$value
  stopifnot(isTRUE(all.equal(as.numeric(logLik(m)), as.numeric(logLik(orig)), tolerance = 1e-8)))

  fe <- coef(summary(m))
  fe_vals <- if (cs$fun == "lme") fixef(m) else coef(m)
  V <- vcov(m)
  ll <- logLik(m)

  cst <- m$modelStruct$corStruct
  corstruct <- if (is.null(cst)) NA else {
    cv <- coef(cst, unconstrained = FALSE)
    list(class = class(cst)[1], names = vec(names(cv)), value = vec(cv),
         unconstrained = vec(coef(cst, unconstrained = TRUE)))
  }
  vst <- m$modelStruct$varStruct
  varident <- if (is.null(vst)) NA else {
    r <- coef(vst, unconstrained = FALSE, allCoef = TRUE)
    list(class = class(vst)[1], by = "Sex", reference = names(r)[1],
         levels = vec(names(r)), ratios = vec(r),
         unconstrained = vec(coef(vst, unconstrained = TRUE)),
         sd = vec(m$sigma * r))
  }

  ngroups <- if (cs$fun == "lme") {
    g <- m$dims$ngrps[seq_len(m$dims$Q)]; as.list(setNames(as.integer(g), names(g)))
  } else if (!is.null(cst)) {
    list(Mare = nlevels(d$Mare))
  } else NA

  out <- list(
    case = cs$case,
    r_call = cs$r_call,
    data = data_path(cs$dataset),
    python = c(cs$python, list(method = method)),
    fun = cs$fun,
    reml = cs$reml,
    nobs = as.integer(m$dims$N),
    ngroups = ngroups,
    fixef = list(names = vec(names(fe_vals)), values = vec(fe_vals)),
    se = vec(fe[, "Std.Error"]),
    vcov = mat(V),
    tvalue = vec(fe[, "t-value"]),
    df_fixef = if (cs$fun == "lme") vec(fe[, "DF"]) else NA,
    corstruct = corstruct,
    varident = varident,
    varcorr = if (cs$fun == "lme") varcorr_block(m) else NA,
    sigma = m$sigma,
    loglik = as.numeric(ll),
    aic = AIC(m), bic = BIC(m), df = as.integer(attr(ll, "df")),
    fitted = vec(head(if (cs$fun == "lme") fitted(m, level = 1) else fitted(m), 10)),
    fitted_fixed = if (cs$fun == "lme") vec(head(fitted(m, level = 0), 10)) else NA,
    residuals = vec(head(if (cs$fun == "lme") residuals(m, level = 1) else residuals(m), 10)),
    ranef = if (cs$fun == "lme") {
      re <- ranef(m)
      list(levels = vec(rownames(re)),
           columns = setNames(lapply(names(re), function(cn) vec(re[[cn]])), names(re)))
    } else NA,
    model_struct_unconstrained = list(names = vec(names(coef(m$modelStruct))),
                                      values = vec(coef(m$modelStruct))),
    intervals = interval_block(m),
    intervals_relstep_1e4 = interval_block(fit_call(cs$call, d,
      make_ctrl(cs$fun, c(ft$control_args, list(.relStep = 1e-4)), ft$optimizer), method)$value),
    intervals_richardson = with_richardson_fdHess(interval_block(fit_call(cs$call, d,
      make_ctrl(cs$fun, ft$control_args, ft$optimizer), method)$value)),
    anova_marginal = {
      a <- anova(m, type = "marginal")
      list(terms = vec(rownames(a)), numdf = vec(a[["numDF"]]),
           dendf = vec(if ("denDF" %in% names(a)) a[["denDF"]] else rep(NA, nrow(a))),
           f = vec(a[["F-value"]]), p = vec(a[["p-value"]]))
    },
    anova_vs_independent = if (!is.null(cs$null_call)) {
      m0 <- fit_tight(cs, cs$null_call, d, method)$model
      anova_block(m0, m)
    } else NA,
    default_fit = if (inherits(dflt$value, "fit_error"))
      list(error = unclass(dflt$value), warnings = vec(dflt$msgs)) else
      list(loglik = as.numeric(logLik(dflt$value)),
           corstruct = if (is.null(cst)) NA else
             vec(coef(dflt$value$modelStruct$corStruct, unconstrained = FALSE)),
           warnings = vec(dflt$msgs)),
    original_object_loglik = as.numeric(logLik(orig)),
    tight_fit = list(control = ft$control_name, control_args = ft$control_args,
                     optimizer = ft$optimizer, candidates = ft$candidates, tried = ft$tried),
    warnings = vec(ft$msgs),
    data_columns = vec(names(d)),
    factor_columns = vec(factor_cols[[cs$dataset]]),
    versions = list(R = paste(R.version$major, R.version$minor, sep = "."),
                    nlme = nlme_version)
  )
  write_json(out, file.path(out_dir, paste0(cs$case, ".json")),
             digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null")

  summary_rows[[cs$case]] <- data.frame(
    case = cs$case, loglik = as.numeric(ll),
    corpar = if (is.null(cst)) NA else unname(coef(cst, unconstrained = FALSE))[1],
    control = ft$control_name, optimizer = ft$optimizer,
    intervals = if (is.null(out$intervals$error)) "ok" else "error")
}
print(do.call(rbind, summary_rows), row.names = FALSE, digits = 10)
