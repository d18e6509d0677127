// The decentralized optimizer family as torch::optim optimizers (namespace decent::optim):
//
//   PmSGD                 pmsgd, pmsgd-lars                       (optim/pmsgd.h)
//   DSGD                  dsgd, dsgd-awc, dmsgd, awc-dmsgd, da-dmsgd,
//                         dsgd-pga, dsgd-multi-gossip             (optim/dsgd.h)
//   DecentLaM, QGDmSGD    decentlam, qg-dmsgd                     (optim/momentum.h)
//   LocalSGD, SlowMo      local-sgd, slowmo                       (optim/periodic.h)
//   PushSum               push-sum                                (optim/push_sum.h)
//   EXTRA, ExactDiffusion, D2,
//   GradientTracking, DGD extra, exact-diffusion, d2,
//                         gradient-tracking, dgd                  (optim_bias_corrected.h)
//   CSGD, DoubleSqueeze, DCDPSGD,
//   DeepSqueeze, ChocoSGD csgd, doublesqueeze, dcd-psgd,
//                         deepsqueeze, choco-sgd                  (optim_compressed.h)
//   ADPSGD, AsyncGossip   ad-psgd, async-gossip                   (optim_async.h)
//   DecentralizedWrapper  wrapper, wrapper-sgd, wrapper-adam, ... (optim/wrapper.h)
//   make_optimizer        by name                                 (optim/factory.h)
//
//   auto ctx = decent::Context::init();
//   ctx->set_topology(decent::topology::ring(ctx->size()));
//   decent::broadcast_parameters(*ctx, *model);
//   decent::optim::DSGD opt(model->parameters(), ctx,
//   decent::optim::DSGDOptions(0.1).momentum(0.9)); for (auto& batch : loader) {
//     opt.zero_grad();
//     auto loss = torch::nll_loss(model->forward(batch.data), batch.target);
//     loss.backward();
//     opt.step();
//   }
//
// The update rules are those of ALGORITHMS.md; docs/optimizers.md describes each one.
#pragma once

#include "decent/torch/optim/base.h"
#include "decent/torch/optim/dsgd.h"
#include "decent/torch/optim/factory.h"
#include "decent/torch/optim/momentum.h"
#include "decent/torch/optim/periodic.h"
#include "decent/torch/optim/pmsgd.h"
#include "decent/torch/optim/push_sum.h"
#include "decent/torch/optim/wrapper.h"
#include "decent/torch/optim_async.h"
#include "decent/torch/optim_bias_corrected.h"
#include "decent/torch/optim_compressed.h"
