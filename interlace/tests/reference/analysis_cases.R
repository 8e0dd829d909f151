## analysis_cases.R -- the data and fits shared by the reference scripts of the analyses
## that follow a fit (issue 17): make_tidy_reference.R, make_r2_reference.R,
## make_drop1_reference.R, make_emmeans_reference.R, make_pbmodcomp_reference.R.
## Sourced from the repository root after reference_helpers.R.
##
## Generated with R 4.2.2, lme4 1.1-31, lmerTest 3.1-3, pbkrtest 0.5.2, emmeans 1.8.4-1,
## performance 0.10.2, insight 0.19.0, broom.mixed 0.2.9.4, ordinal 2022.11.16.
##
## It reads interlace/tests/reference/data/glmm_gamma.csv (make_glmer_reference.R's) and
## (re)writes interlace/tests/reference/data/factorial_unbalanced.csv (simulated,
## deterministic: an unbalanced 3 x 2 factorial, A between subjects with 5/6/7 subjects,
## B within subjects with 1-4 replicates per cell, some cells empty) and defines
##   cases      : name -> list(formula, data, kind = "lmer" | "glmer" | "clmm", family,
##                python = how interlace fits it)
##   fit_case() : the fit, with tight optimizer settings (lmer: nloptwrap to 1e-12;
##                glmer: nloptwrap to 1e-12 with tolPwrss 1e-13, as make_glmer_reference.R
##                chooses for grouseticks, so the references
##                sit at lme4's optimum rather than where its default tolerances stop)

suppressPackageStartupMessages({
  library(lmerTest)
  library(ordinal)
  library(jsonlite)
})

real_dir <- "interlace/datasets/data"
sim_dir  <- "interlace/tests/reference/data"
ana_dir  <- "interlace/tests/reference/analysis"
dir.create(ana_dir, recursive = TRUE, showWarnings = FALSE)

## ---------------------------------------------------------------------------- data
set.seed(1717)
fac_sizes <- c(a1 = 5, a2 = 6, a3 = 7)
fac <- do.call(rbind, lapply(names(fac_sizes), function(a) {
  do.call(rbind, lapply(seq_len(fac_sizes[[a]]), function(s) {
    id <- sprintf("%s_s%d", a, s)
    u <- rnorm(1, 0, 1.5)
    reps <- c(b1 = sample(0:4, 1, prob = c(0.1, 0.3, 0.3, 0.2, 0.1)),
              b2 = sample(1:4, 1))
    do.call(rbind, lapply(names(reps), function(b) {
      if (reps[[b]] == 0) return(NULL)
      mu <- 10 + c(a1 = 0, a2 = 1.2, a3 = -0.8)[[a]] + (b == "b2") * 0.9 +
        (b == "b2") * c(a1 = 0, a2 = -1.1, a3 = 0.7)[[a]]
      data.frame(subject = id, A = a, B = b, y = r6(mu + u + rnorm(reps[[b]], 0, 1)))
    }))
  }))
}))
write_csv_plain(fac, file.path(sim_dir, "factorial_unbalanced.csv"))

read_real <- function(name) read_csv_plain(file.path(real_dir, paste0(name, ".csv")))
dat <- list(
  sleepstudy  = read_real("sleepstudy"),
  penicillin  = read_real("penicillin"),
  factorial   = read_csv_plain(file.path(sim_dir, "factorial_unbalanced.csv")),
  gamma       = read_csv_plain(file.path(sim_dir, "glmm_gamma.csv")),
  cbpp        = read_real("cbpp"),
  grouseticks = read_real("grouseticks"),
  wine        = read_real("wine")
)
dat$sleepstudy$Subject <- factor(dat$sleepstudy$Subject)
dat$cbpp$period <- factor(dat$cbpp$period)
dat$cbpp$herd <- factor(dat$cbpp$herd)
for (v in c("YEAR", "BROOD", "INDEX", "LOCATION")) dat$grouseticks[[v]] <- factor(dat$grouseticks[[v]])
dat$wine$rating <- factor(dat$wine$rating, ordered = TRUE)
dat$wine$judge <- factor(dat$wine$judge)

## python: dataset (bundled name or reference/data path), formula and random terms for
## interlace, family, and the columns to read as strings (factors)
py <- function(data, formula, random, family = NULL, factors = character(), entry = "fit", link = NULL) {
  out <- list(data = data, formula = formula, random = vec(random), family = family, factors = vec(factors),
              entry = entry)
  if (!is.null(link)) out$link <- link
  out
}

cases <- list(
  sleepstudy = list(formula = Reaction ~ Days + (Days | Subject), data = "sleepstudy", kind = "lmer",
                    python = py("sleepstudy", "Reaction ~ Days", "(Days | Subject)", factors = "Subject")),
  penicillin = list(formula = diameter ~ sample + (1 | plate), data = "penicillin", kind = "lmer",
                    python = py("penicillin", "diameter ~ sample", "(1 | plate)")),
  penicillin_crossed = list(formula = diameter ~ 1 + (1 | plate) + (1 | sample), data = "penicillin",
                            kind = "lmer",
                            python = py("penicillin", "diameter ~ 1", c("(1 | plate)", "(1 | sample)"))),
  factorial = list(formula = y ~ A * B + (1 | subject), data = "factorial", kind = "lmer",
                   python = py("data/factorial_unbalanced.csv", "y ~ A * B", "(1 | subject)")),
  cbpp = list(formula = cbind(incidence, size - incidence) ~ period + (1 | herd), data = "cbpp",
              kind = "glmer", family = binomial(),
              python = py("cbpp", "cbind(incidence, size - incidence) ~ period", "(1 | herd)", "binomial",
                          c("period", "herd"), entry = "glmer")),
  grouseticks = list(formula = TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION),
                     data = "grouseticks", kind = "glmer", family = poisson(),
                     python = py("grouseticks", "TICKS ~ YEAR + cHEIGHT",
                                 c("(1 | BROOD)", "(1 | INDEX)", "(1 | LOCATION)"), "poisson",
                                 c("YEAR", "BROOD", "INDEX", "LOCATION"), entry = "glmer")),
  gamma = list(formula = y ~ x + (1 | g), data = "gamma", kind = "glmer", family = Gamma(link = "log"),
               python = py("data/glmm_gamma.csv", "y ~ x", "(1 | g)", "gamma", entry = "glmer", link = "log")),
  wine = list(formula = rating ~ temp + contact + (1 | judge), data = "wine", kind = "clmm",
              python = py("wine", "rating ~ temp + contact", "(1 | judge)", factors = "judge", entry = "clmm"))
)

ctrl_lmer <- lmerControl(optimizer = "nloptwrap",
                         optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14, xtol_rel = 1e-12, maxeval = 1e5))
ctrl_glmer <- glmerControl(optimizer = "nloptwrap", tolPwrss = 1e-13,
                           optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14, xtol_rel = 1e-12, maxeval = 1e5))

## the data sit in the global environment under the case's data name, so that update()
## (drop1, insight's null model, pbkrtest) finds them again
fit_case <- function(cs, REML = TRUE, formula = cs$formula) {
  assign(cs$data, dat[[cs$data]], envir = globalenv())
  d <- as.name(cs$data)
  switch(cs$kind,
         lmer = eval(bquote(lmerTest::lmer(.(formula), data = .(d), REML = .(REML), control = ctrl_lmer)),
                     globalenv()),
         glmer = eval(bquote(lme4::glmer(.(formula), data = .(d), family = .(cs$family), control = ctrl_glmer)),
                      globalenv()),
         clmm = eval(bquote(ordinal::clmm(.(formula), data = .(d))), globalenv()))
}

write_ref <- function(x, path) write_json(x, path, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null")
