#!/usr/bin/env Rscript
## make_lmer_reference.R -- lme4 reference values for the interlace LMM test-suite.
##
## Generated with: R 4.2.2 Patched (2022-11-10 r83330), lme4 1.1-31, jsonlite 1.8.4
## (Debian packages).  Other versions may give slightly different default fits.
##
## Run from the repository root:
##     Rscript interlace/tests/reference/make_lmer_reference.R
## or, to refit only some cases (the data and datasets are rewritten identically),
##     Rscript interlace/tests/reference/make_lmer_reference.R crossed_slopes_reml
##
## It (re)writes
##   interlace/datasets/data/*.csv + README.md   real lme4 datasets (factors as labels)
##   benchmarks/data/insteval.csv.gz              lme4::InstEval, gzip CSV
##   interlace/tests/reference/data/*.csv         simulated datasets (set.seed, deterministic)
##   interlace/tests/reference/lmer/<case>.json   one JSON of reference values per case
##
## CSV conventions: header row, no row names, no quoting (the script checks that no
## label contains a comma or quote), missing values are EMPTY fields, simulated numeric
## columns are rounded to 6 decimals.  Simulated data are written first and then READ
## BACK from the CSV before fitting, so the JSON values correspond exactly to the CSV.
## Real datasets are fitted on the lme4 objects themselves (the script checks the CSV
## round-trips them exactly).
##
## JSON conventions (jsonlite::write_json, digits = NA, auto_unbox = TRUE):
##   * every vector-valued field is a JSON array, even when of length 1;
##   * -Inf in "lower" is written as null (null == -Inf, i.e. unbounded);
##   * R NA / NULL (e.g. "weights", "offset", "reml_criterion" for ML fits, "var2"
##     in varcorr rows without a second term) are written as null;
##   * "objective" is REMLcrit(m) for REML fits and deviance(m) for ML fits
##     (= -2 * loglik in both cases); "loglik" is the REML log-likelihood for REML fits;
##   * grouping-factor names are exactly lme4's: ngrps()/ranef() use e.g.
##     "cask:batch", "c:(b:a)", "recipe:replicate"; varcorr "grp" follows
##     as.data.frame(VarCorr(m)) (e.g. "Subject" and "Subject.1" for (Days||Subject));
##   * "fitted" is in data row order after dropping NA rows; "dropped_rows" gives the
##     1-based CSV data-row numbers that lmer dropped (na.omit);
##   * "predict$newdata" = first 5 rows of the data used in the fit (after NA
##     dropping) + 1 row whose grouping levels are all unseen ("NEW"); for the nested
##     designs (pastes, nested3) extra rows with partially unseen levels follow.
##   * offset case: lme4 1.1-31's predict(newdata=) ignores an offset passed via the
##     `offset=` argument; "predict$with_re"/"fixed_only" INCLUDE the newdata offset
##     (checked against the equivalent `+ offset(off)` formula model), and lme4's raw
##     offset-free output is kept in "lme4_raw_with_re"/"lme4_raw_fixed_only";
##   * precision: tight-fit objectives agree between nloptwrap and bobyqa to ~1e-11,
##     but theta is only pinned down to ~1e-7 (flat optimum; reruns can jitter theta
##     at that level), so compare theta-derived quantities with rtol >= 1e-6;
##   * extra fields beyond the brief: "objective", "dropped_rows", "tight_fit"
##     (optimizer chosen + candidate objectives), "warnings" (R warnings/messages
##     raised by the tight fit), "data_columns".

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

if (!file.exists("interlace/tests/reference/make_lmer_reference.R"))
  stop("run this script from the repository root")

real_dir  <- "interlace/datasets/data"
sim_dir   <- "interlace/tests/reference/data"
out_dir   <- "interlace/tests/reference/lmer"
bench_dir <- "benchmarks/data"
for (d in c(real_dir, sim_dir, out_dir, bench_dir)) dir.create(d, recursive = TRUE, showWarnings = FALSE)

lme4_version <- packageDescription("lme4")$Version   # e.g. "1.1-31"

## ---------------------------------------------------------------------------
## CSV helpers
## ---------------------------------------------------------------------------
source("interlace/tests/reference/reference_helpers.R")

## ---------------------------------------------------------------------------
## 1. real datasets
## ---------------------------------------------------------------------------
real <- list(
  sleepstudy = lme4::sleepstudy,
  dyestuff   = lme4::Dyestuff,
  dyestuff2  = lme4::Dyestuff2,
  penicillin = lme4::Penicillin,
  pastes     = lme4::Pastes,
  cake       = lme4::cake[, c("replicate", "recipe", "temperature", "temp", "angle")]
)
real_desc <- list(
  sleepstudy = "Reaction = average reaction time (ms); Days = days of sleep deprivation (0-9); Subject = subject id (factor, 18 levels)",
  dyestuff   = "Batch = batch of intermediate product (factor A-F); Yield = yield of dyestuff (g of standard colour)",
  dyestuff2  = "Batch = batch (factor A-F); Yield = simulated yield (Box & Tiao); gives a singular fit",
  penicillin = "diameter = zone of inhibition diameter (mm); plate = assay plate (factor a-x); sample = penicillin sample (factor A-F)",
  pastes     = "strength = paste strength; batch = delivery batch (factor A-J); cask = cask within batch (factor a-c, labels repeat across batches); sample = batch:cask label",
  cake       = "replicate = replicate (factor 1-15); recipe = recipe (factor A-C); temperature = baking temperature (ordered factor, label); temp = numeric temperature (degC); angle = breakage angle (degrees)"
)
real_rname <- c(sleepstudy = "sleepstudy", dyestuff = "Dyestuff", dyestuff2 = "Dyestuff2",
                penicillin = "Penicillin", pastes = "Pastes", cake = "cake")

readme <- c("# Datasets exported from R package lme4",
            "",
            sprintf("Written by `interlace/tests/reference/make_lmer_reference.R` (R %s.%s, lme4 %s). Factors are written as their labels; no quoting; missing values would be empty fields.",
                    R.version$major, R.version$minor, lme4_version),
            "")
for (nm in names(real)) {
  path <- file.path(real_dir, paste0(nm, ".csv"))
  write_csv_plain(real[[nm]], path)
  check_roundtrip(real[[nm]], path)
  readme <- c(readme, sprintf("- `%s.csv`: lme4 %s `%s`, %d rows. Columns: %s.",
                              nm, lme4_version, real_rname[[nm]], nrow(real[[nm]]), real_desc[[nm]]))
}
## keep the lines other reference scripts appended (make_glmer_reference.R adds its datasets)
readme_path <- file.path(real_dir, "README.md")
if (file.exists(readme_path)) {
  old <- readLines(readme_path)
  start <- grep("^Also written by", old)
  if (length(start)) readme <- c(readme, "", old[start[1]:length(old)])
}
writeLines(readme, readme_path)

## InstEval for benchmarks
inst <- lme4::InstEval[, c("s", "d", "dept", "service", "studage", "lectage", "y")]
write_csv_plain(inst, file.path(bench_dir, "insteval.csv.gz"))

## ---------------------------------------------------------------------------
## 2. simulated datasets (written, then read back from CSV)
## ---------------------------------------------------------------------------

## 11: depth-3 nesting, labels repeat across parents
set.seed(20240611)
{
  na_ <- 8; nb <- 4; nc <- 3
  sd_a <- 1.0; sd_b <- 0.8; sd_c <- 0.6; sig <- 0.5
  ua <- rnorm(na_, 0, sd_a)
  ub <- matrix(rnorm(na_ * nb, 0, sd_b), na_, nb)
  uc <- array(rnorm(na_ * nb * nc, 0, sd_c), c(na_, nb, nc))
  rows <- list()
  for (i in seq_len(na_)) for (j in seq_len(nb)) for (k in seq_len(nc)) {
    n <- sample(4:5, 1)
    x <- rnorm(n)
    y <- 10 + 1.5 * x + ua[i] + ub[i, j] + uc[i, j, k] + rnorm(n, 0, sig)
    rows[[length(rows) + 1]] <- data.frame(a = lab("a", i, 1), b = lab("b", j, 1),
                                           c = lab("c", k, 1), x = r6(x), y = r6(y))
  }
  nested3 <- do.call(rbind, rows)
  keep <- sort(sample(nrow(nested3), round(0.85 * nrow(nested3))))
  nested3 <- nested3[keep, c("y", "x", "a", "b", "c")]
  rownames(nested3) <- NULL
  write_csv_plain(nested3, file.path(sim_dir, "nested3.csv"))
}

## 12/13: unbalanced crossed design with missing values
set.seed(20240612)
{
  n1 <- 40; n2 <- 25; n <- 1500
  w1 <- rgamma(n1, 2); w2 <- rgamma(n2, 2)
  cell <- sample(n1 * n2, n, replace = TRUE, prob = as.vector(outer(w1, w2)))
  i1 <- (cell - 1) %% n1 + 1; i2 <- (cell - 1) %/% n1 + 1
  u1 <- rnorm(n1, 0, 1.2); u2 <- rnorm(n2, 0, 0.7)
  x1 <- rnorm(n); x2 <- runif(n, -1, 1)
  y <- 3 + 0.8 * x1 - 0.5 * x2 + u1[i1] + u2[i2] + rnorm(n, 0, 1)
  crossed <- data.frame(y = r6(y), x1 = r6(x1), x2 = r6(x2),
                        g1 = lab("g", i1, 2), g2 = lab("h", i2, 2), stringsAsFactors = FALSE)
  crossed$y[sample(n, round(0.05 * n))]  <- NA
  crossed$x1[sample(n, round(0.05 * n))] <- NA
  crossed$g2[sample(n, round(0.05 * n))] <- NA
  write_csv_plain(crossed, file.path(sim_dir, "crossed_missing.csv"))
}

## 14/15: prior weights
set.seed(20240614)
{
  ng <- 30; n <- 300
  g <- sort(c(1:ng, sample(ng, n - ng, replace = TRUE)))   # every group present, unequal sizes
  w <- runif(n, 0.5, 3)
  x <- rnorm(n)
  u <- rnorm(ng, 0, 0.9)
  y <- 5 - 0.7 * x + u[g] + rnorm(n, 0, 1.1 / sqrt(w))
  weights <- data.frame(y = r6(y), x = r6(x), g = lab("g", g, 2), w = r6(w))
  write_csv_plain(weights, file.path(sim_dir, "weights.csv"))
}

## 16: offset
set.seed(20240616)
{
  ng <- 25; n <- 250
  g <- sort(c(1:ng, sample(ng, n - ng, replace = TRUE)))
  x <- rnorm(n)
  off <- rnorm(n, 1, 0.5)
  u <- rnorm(ng, 0, 0.8)
  y <- off + 2 + 0.4 * x + u[g] + rnorm(n, 0, 0.7)
  offset_df <- data.frame(y = r6(y), x = r6(x), g = lab("g", g, 2), off = r6(off))
  write_csv_plain(offset_df, file.path(sim_dir, "offset.csv"))
}

## 17: correlated random slopes + crossed intercept
set.seed(20240617)
{
  n1 <- 60; n2 <- 15; n <- 2000
  i1 <- sample(n1, n, replace = TRUE, prob = rgamma(n1, 3))
  i2 <- sample(n2, n, replace = TRUE)
  S <- matrix(c(1.0^2, 0.5 * 1.0 * 0.6, 0.5 * 1.0 * 0.6, 0.6^2), 2)
  U <- matrix(rnorm(2 * n1), n1, 2) %*% chol(S)
  u2 <- rnorm(n2, 0, 0.5)
  x <- rnorm(n)
  y <- 1 + 0.5 * x + U[i1, 1] + U[i1, 2] * x + u2[i2] + rnorm(n, 0, 0.8)
  slopes <- data.frame(y = r6(y), x = r6(x), g1 = lab("g", i1, 2), g2 = lab("h", i2, 2))
  write_csv_plain(slopes, file.path(sim_dir, "slopes_crossed.csv"))
}

## 18: factor-valued random slopes (0 + f | g)
set.seed(20240618)
{
  ng <- 40; n <- 1200
  g <- rep(1:ng, each = n / ng)
  f <- sample(c("A", "B", "C"), n, replace = TRUE)
  sds <- c(1.0, 0.7, 1.2)
  R <- matrix(c(1, 0.5, 0.2, 0.5, 1, -0.3, 0.2, -0.3, 1), 3)
  S <- diag(sds) %*% R %*% diag(sds)
  U <- matrix(rnorm(3 * ng), ng, 3) %*% chol(S)
  mu <- c(A = 2, B = 3, C = 1.5)
  fi <- match(f, c("A", "B", "C"))
  y <- mu[fi] + U[cbind(g, fi)] + rnorm(n, 0, 0.9)
  factor_slope <- data.frame(y = r6(unname(y)), f = f, g = lab("g", g, 2))
  write_csv_plain(factor_slope, file.path(sim_dir, "factor_slope.csv"))
}

## 19: correlated random intercepts and slopes on both of two crossed factors
set.seed(20240619)
{
  n1 <- 60; n2 <- 30; n <- 3000
  i1 <- sample(n1, n, replace = TRUE)
  i2 <- sample(n2, n, replace = TRUE)
  S1 <- matrix(c(1.0^2, 0.3 * 1.0 * 0.5, 0.3 * 1.0 * 0.5, 0.5^2), 2)
  S2 <- matrix(c(0.7^2, -0.4 * 0.7 * 0.4, -0.4 * 0.7 * 0.4, 0.4^2), 2)
  U1 <- matrix(rnorm(2 * n1), n1, 2) %*% chol(S1)
  U2 <- matrix(rnorm(2 * n2), n2, 2) %*% chol(S2)
  x <- rnorm(n)
  y <- 1 + 0.5 * x + U1[i1, 1] + U1[i1, 2] * x + U2[i2, 1] + U2[i2, 2] * x + rnorm(n)
  crossed_slopes <- data.frame(y = r6(y), x = r6(x), a = lab("a", i1, 2), b = lab("b", i2, 2))
  write_csv_plain(crossed_slopes, file.path(sim_dir, "crossed_slopes.csv"))
}

sim <- list()
for (nm in c("nested3", "crossed_missing", "weights", "offset", "slopes_crossed", "factor_slope", "crossed_slopes"))
  sim[[nm]] <- read_csv_plain(file.path(sim_dir, paste0(nm, ".csv")))
## the quickstart's data is simulated by numpy: written by make_quickstart_data.py, only read here
sim$quickstart <- read_csv_plain(file.path(sim_dir, "quickstart.csv"))

## ---------------------------------------------------------------------------
## 3. case definitions
## ---------------------------------------------------------------------------
## newrows: list of data.frames appended to the first 5 rows of the fitted data
mk <- function(case, formula, dataname, df, data_path, reml, py_formula, py_random,
               newrows, weights = NULL, offset = NULL) {
  list(case = case, formula = formula, dataname = dataname, df = df, data_path = data_path,
       reml = reml, py_formula = py_formula, py_random = py_random, newrows = newrows,
       weights = weights, offset = offset)
}
rp <- function(nm) file.path(real_dir, paste0(nm, ".csv"))
sp <- function(nm) file.path(sim_dir, paste0(nm, ".csv"))

cases <- list(
  mk("dyestuff_reml", Yield ~ 1 + (1 | Batch), "Dyestuff", real$dyestuff, rp("dyestuff"), TRUE,
     "Yield ~ 1", "(1 | Batch)", list(data.frame(Batch = "NEW"))),
  mk("dyestuff_ml", Yield ~ 1 + (1 | Batch), "Dyestuff", real$dyestuff, rp("dyestuff"), FALSE,
     "Yield ~ 1", "(1 | Batch)", list(data.frame(Batch = "NEW"))),
  mk("dyestuff2_reml", Yield ~ 1 + (1 | Batch), "Dyestuff2", real$dyestuff2, rp("dyestuff2"), TRUE,
     "Yield ~ 1", "(1 | Batch)", list(data.frame(Batch = "NEW"))),
  mk("penicillin_reml", diameter ~ 1 + (1 | plate) + (1 | sample), "Penicillin", real$penicillin,
     rp("penicillin"), TRUE, "diameter ~ 1", c("(1 | plate)", "(1 | sample)"),
     list(data.frame(plate = "NEW", sample = "NEW"))),
  mk("pastes_reml", strength ~ 1 + (1 | batch / cask), "Pastes", real$pastes, rp("pastes"), TRUE,
     "strength ~ 1", "(1 | batch/cask)",
     list(data.frame(batch = "NEW", cask = "NEW"),
          data.frame(batch = "A", cask = "NEW"))),
  mk("sleepstudy_reml", Reaction ~ Days + (Days | Subject), "sleepstudy", real$sleepstudy,
     rp("sleepstudy"), TRUE, "Reaction ~ Days", "(Days | Subject)",
     list(data.frame(Days = 4.5, Subject = "NEW"))),
  mk("sleepstudy_ml", Reaction ~ Days + (Days | Subject), "sleepstudy", real$sleepstudy,
     rp("sleepstudy"), FALSE, "Reaction ~ Days", "(Days | Subject)",
     list(data.frame(Days = 4.5, Subject = "NEW"))),
  mk("sleepstudy_uncorr", Reaction ~ Days + (Days || Subject), "sleepstudy", real$sleepstudy,
     rp("sleepstudy"), TRUE, "Reaction ~ Days", "(Days || Subject)",
     list(data.frame(Days = 4.5, Subject = "NEW"))),
  mk("sleepstudy_intercept_ml", Reaction ~ Days + (1 | Subject), "sleepstudy", real$sleepstudy,
     rp("sleepstudy"), FALSE, "Reaction ~ Days", "(1 | Subject)",
     list(data.frame(Days = 4.5, Subject = "NEW"))),
  mk("cake_ml", angle ~ recipe * temp + (1 | recipe:replicate), "cake", real$cake, rp("cake"), FALSE,
     "angle ~ recipe * temp", "(1 | recipe:replicate)",
     list(data.frame(recipe = "B", temp = 200, replicate = "NEW"))),
  mk("nested3_reml", y ~ x + (1 | a / b / c), "nested3", sim$nested3, sp("nested3"), TRUE,
     "y ~ x", "(1 | a/b/c)",
     list(data.frame(x = 0.5, a = "NEW", b = "NEW", c = "NEW"),
          data.frame(x = 0.5, a = "a1", b = "NEW", c = "NEW"),
          data.frame(x = 0.5, a = "a1", b = "b1", c = "NEW"))),
  mk("crossed_missing_reml", y ~ x1 + x2 + (1 | g1) + (1 | g2), "crossed_missing", sim$crossed_missing,
     sp("crossed_missing"), TRUE, "y ~ x1 + x2", c("(1 | g1)", "(1 | g2)"),
     list(data.frame(x1 = 0.5, x2 = -0.25, g1 = "NEW", g2 = "NEW"))),
  mk("crossed_missing_ml", y ~ x1 + x2 + (1 | g1) + (1 | g2), "crossed_missing", sim$crossed_missing,
     sp("crossed_missing"), FALSE, "y ~ x1 + x2", c("(1 | g1)", "(1 | g2)"),
     list(data.frame(x1 = 0.5, x2 = -0.25, g1 = "NEW", g2 = "NEW"))),
  mk("weights_reml", y ~ x + (1 | g), "weights", sim$weights, sp("weights"), TRUE,
     "y ~ x", "(1 | g)", list(data.frame(x = 0.5, g = "NEW")), weights = "w"),
  mk("weights_ml", y ~ x + (1 | g), "weights", sim$weights, sp("weights"), FALSE,
     "y ~ x", "(1 | g)", list(data.frame(x = 0.5, g = "NEW")), weights = "w"),
  mk("offset_reml", y ~ x + (1 | g), "offset", sim$offset, sp("offset"), TRUE,
     "y ~ x", "(1 | g)", list(data.frame(x = 0.5, g = "NEW", off = 1.25)), offset = "off"),
  mk("slopes_crossed_reml", y ~ x + (1 + x | g1) + (1 | g2), "slopes_crossed", sim$slopes_crossed,
     sp("slopes_crossed"), TRUE, "y ~ x", c("(1 + x | g1)", "(1 | g2)"),
     list(data.frame(x = 0.5, g1 = "NEW", g2 = "NEW"))),
  mk("crossed_slopes_reml", y ~ x + (1 + x | a) + (1 + x | b), "crossed_slopes", sim$crossed_slopes,
     sp("crossed_slopes"), TRUE, "y ~ x", c("(1 + x | a)", "(1 + x | b)"),
     list(data.frame(x = 0.5, a = "NEW", b = "NEW"), data.frame(x = -1, a = "a01", b = "NEW"))),
  mk("factor_slope_reml", y ~ f + (0 + f | g), "factor_slope", sim$factor_slope, sp("factor_slope"), TRUE,
     "y ~ f", "(0 + f | g)", list(data.frame(f = "B", g = "NEW"))),
  mk("quickstart_crossed_reml", score ~ hours_studied + prior_gpa + (1 | student_id) + (1 | school_id),
     "quickstart", sim$quickstart, sp("quickstart"), TRUE, "score ~ hours_studied + prior_gpa",
     c("(1 | student_id)", "(1 | school_id)"),
     list(data.frame(hours_studied = c(5, 8), prior_gpa = c(3.2, 3.8), student_id = c("s1", "s_new"),
                     school_id = c("sch1", "sch2")))),
  mk("quickstart_slopes_reml", score ~ hours_studied + prior_gpa + (1 + hours_studied | student_id) + (1 | school_id),
     "quickstart", sim$quickstart, sp("quickstart"), TRUE, "score ~ hours_studied + prior_gpa",
     c("(1 + hours_studied | student_id)", "(1 | school_id)"),
     list(data.frame(hours_studied = c(5, 8), prior_gpa = c(3.2, 3.8), student_id = c("s1", "s_new"),
                     school_id = c("sch1", "sch2"))))
)

## ---------------------------------------------------------------------------
## 4. fitting
## ---------------------------------------------------------------------------
capture <- function(expr) {
  msgs <- character()
  val <- withCallingHandlers(expr,
    warning = function(w) { msgs <<- c(msgs, paste("warning:", conditionMessage(w)))
                            invokeRestart("muffleWarning") },
    message = function(m) { msgs <<- c(msgs, paste("message:", trimws(conditionMessage(m))))
                            invokeRestart("muffleMessage") })
  list(value = val, msgs = msgs)
}

fit_one <- function(cs, control) {
  dat <- cs$df
  wsym <- if (is.null(cs$weights)) NULL else as.name(cs$weights)
  osym <- if (is.null(cs$offset)) NULL else as.name(cs$offset)
  cl <- bquote(lmer(.(cs$formula), data = dat, REML = .(cs$reml), weights = .(wsym),
                    offset = .(osym), na.action = na.omit, control = .(control)))
  capture(eval(cl))
}

objective <- function(m) if (isREML(m)) REMLcrit(m) else deviance(m)

ctrl_default <- lmerControl()
ctrl_tight <- list(
  nloptwrap = lmerControl(optimizer = "nloptwrap",
                          optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14,
                                         xtol_rel = 1e-12, maxeval = 100000)),
  bobyqa = lmerControl(optimizer = "bobyqa",
                       optCtrl = list(rhoend = 1e-12, maxfun = 100000))
)

r_call_string <- function(cs) {
  s <- paste0("lmer(", paste(deparse(cs$formula, width.cutoff = 500L), collapse = " "),
              ", data = ", cs$dataname, ", REML = ", cs$reml)
  if (!is.null(cs$weights)) s <- paste0(s, ", weights = ", cs$weights)
  if (!is.null(cs$offset))  s <- paste0(s, ", offset = ", cs$offset)
  paste0(s, ")")
}


summary_rows <- list()

## `Rscript make_lmer_reference.R case1 case2 ...` fits only the named cases
only <- commandArgs(trailingOnly = TRUE)
if (length(only)) cases <- Filter(function(cs) cs$case %in% only, cases)

for (cs in cases) {
  cat("==", cs$case, "\n")
  fd <- fit_one(cs, ctrl_default)
  m_def <- fd$value
  tight <- lapply(ctrl_tight, function(ct) fit_one(cs, ct))
  tobj <- vapply(tight, function(f) objective(f$value), numeric(1))
  best <- names(tobj)[which.min(tobj)]
  m <- tight[[best]]$value
  msgs <- tight[[best]]$msgs
  if (length(fd$msgs)) cat("  default fit:", fd$msgs, sep = "\n    ")
  if (length(msgs)) cat("  tight fit:", msgs, sep = "\n    ")

  dat <- cs$df
  na_act <- attr(model.frame(m), "na.action")
  dropped <- if (is.null(na_act)) integer() else sort(as.integer(na_act))
  used <- if (length(dropped)) dat[-dropped, , drop = FALSE] else dat

  ## predict newdata: first 5 used rows (model columns only) + unseen-level rows
  nd_cols <- names(cs$newrows[[1]])
  nd <- used[1:5, nd_cols, drop = FALSE]
  for (j in nd_cols) if (is.factor(nd[[j]])) nd[[j]] <- as.character(nd[[j]])
  nd <- do.call(rbind, c(list(nd), cs$newrows))
  rownames(nd) <- NULL
  p_re <- predict(m, newdata = nd, allow.new.levels = TRUE)
  p_fe <- predict(m, newdata = nd, re.form = NA)
  pred_extra <- list()
  if (!is.null(cs$offset)) {
    ## lme4 1.1-31 predict(newdata=) silently ignores an offset given via the
    ## `offset=` ARGUMENT (it only honours offset() terms in the formula), although
    ## fitted() includes it.  We store predictions INCLUDING the offset, and keep
    ## lme4's raw output for reference.  Check against the formula-offset model:
    f_off <- update(cs$formula, as.formula(paste(". ~ . + offset(", cs$offset, ")")))
    m_off <- lmer(f_off, data = dat, REML = cs$reml, na.action = na.omit,
                  control = ctrl_tight[[best]])
    pred_extra <- list(offset_included = TRUE,
                       lme4_raw_with_re = vec(p_re), lme4_raw_fixed_only = vec(p_fe))
    p_re <- p_re + nd[[cs$offset]]
    p_fe <- p_fe + nd[[cs$offset]]
    stopifnot(isTRUE(all.equal(unname(p_re), unname(predict(m_off, newdata = nd, allow.new.levels = TRUE)), tolerance = 1e-7)),
              isTRUE(all.equal(unname(p_fe), unname(predict(m_off, newdata = nd, re.form = NA)), tolerance = 1e-7)))
  }

  ranef_out <- ranef_json(m)

  varcorr <- varcorr_json(m)

  fe <- fixef(m)
  V <- as.matrix(vcov(m))
  dimnames(V) <- NULL
  lower <- getME(m, "lower")
  lower[is.infinite(lower)] <- NA   # -> null
  ng <- ngrps(m)
  ll <- logLik(m)

  out <- list(
    case = cs$case,
    r_call = r_call_string(cs),
    data = cs$data_path,
    python = list(formula = cs$py_formula, random = vec(cs$py_random),
                  method = if (cs$reml) "REML" else "ML",
                  weights = if (is.null(cs$weights)) NA else cs$weights,
                  offset = if (is.null(cs$offset)) NA else cs$offset),
    reml = cs$reml,
    nobs = nobs(m),
    ngroups = as.list(setNames(as.integer(ng), names(ng))),
    fixef = list(names = vec(names(fe)), values = vec(fe)),
    se = vec(sqrt(diag(V))),
    vcov = V,
    theta = vec(getME(m, "theta")),
    theta_names = vec(names(getME(m, "theta"))),
    lower = vec(lower),
    sigma = sigma(m),
    varcorr = varcorr,
    loglik = as.numeric(ll),
    objective = objective(m),
    reml_criterion = if (isREML(m)) REMLcrit(m) else NA,
    aic = AIC(m), bic = BIC(m), df = as.integer(attr(ll, "df")),
    is_singular = isSingular(m),
    ranef = ranef_out,
    fitted = vec(fitted(m)),
    na_dropped = nrow(dat) - nobs(m),
    dropped_rows = vec(dropped),
    predict = c(list(newdata = lapply(as.list(nd), vec),
                     with_re = vec(p_re), fixed_only = vec(p_fe)), pred_extra),
    default_fit = list(theta = vec(getME(m_def, "theta")), objective = objective(m_def),
                       optimizer = m_def@optinfo$optimizer,
                       warnings = vec(fd$msgs)),
    tight_fit = list(optimizer = best, candidates = as.list(tobj)),
    warnings = vec(msgs),
    data_columns = vec(names(dat))
  )
  write_json(out, file.path(out_dir, paste0(cs$case, ".json")),
             digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null")

  summary_rows[[cs$case]] <- data.frame(
    case = cs$case, theta = paste(signif(getME(m, "theta"), 6), collapse = ","),
    loglik = as.numeric(ll), singular = isSingular(m), tight = best,
    obj_diff = objective(m_def) - objective(m), nobs = nobs(m))
}

cat("\nSummary\n")
smry <- do.call(rbind, summary_rows); rownames(smry) <- NULL
print(smry, digits = 10)
