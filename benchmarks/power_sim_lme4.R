## power_sim_lme4.R -- the R side of the powerSim timing in docs/power.md: 1,000 simulations
## from the sleepstudy fit with the Days effect set to 3, each refitted by lme4's refit()
## and tested with lmerTest's Satterthwaite t test (simr is not packaged for Debian; this
## is the loop simr runs).  Run once, on a quiet machine:
##     Rscript benchmarks/power_sim_lme4.R ; python3 -m benchmarks.power_sim
suppressPackageStartupMessages({library(lme4); library(lmerTest)})
ss <- read.csv("interlace/datasets/data/sleepstudy.csv")  # run from the repository root; ss$Subject <- factor(ss$Subject)
m <- lme4::lmer(Reaction ~ Days + (Days | Subject), ss)
fixef_new <- fixef(m); fixef_new["Days"] <- 3
set.seed(1)
t0 <- proc.time()
p <- numeric(1000)
for (i in 1:1000) {
  y <- simulate(m, newparams = list(beta = fixef_new, theta = getME(m, "theta"), sigma = sigma(m)))[[1]]
  r <- refit(m, y)
  p[i] <- summary(lmerTest::as_lmerModLmerTest(r))$coefficients["Days", "Pr(>|t|)"]
}
t1 <- proc.time() - t0
cat("lme4 refit + lmerTest Satterthwaite t test, 1000 sims:", t1[["elapsed"]], "s; power", mean(p < 0.05), "\n")
set.seed(1)
t0 <- proc.time()
for (i in 1:1000) {
  y <- simulate(m, newparams = list(beta = fixef_new, theta = getME(m, "theta"), sigma = sigma(m)))[[1]]
  r <- refit(m, y)
}
cat("lme4 refit only, 1000 sims:", (proc.time() - t0)[["elapsed"]], "s\n")
