// embedding: lookup, scatter-add backward with repeated ids, id errors.

#include <gtest/gtest.h>

#include "ops_test_util.hpp"
#include "qaware/ops/embedding.hpp"

namespace qaware {
namespace {

TEST(EmbeddingTest, LooksUpRowsForAnyIdShape) {
  const DynTensor<double> table = test::uniform(Shape{6, 4}, 1);
  const DynTensor<std::int64_t> ids = test::ints(Shape{2, 3}, {5, 0, 2, 2, 1, 5});
  Tape<double> tape;
  Var<double> y = embedding(tape.constant(table), ids);
  ASSERT_EQ(y.shape(), Shape({2, 3, 4}));
  for (Index n = 0; n < 6; ++n)
    for (Index c = 0; c < 4; ++c) EXPECT_EQ(y.value()[n * 4 + c], table[ids[n] * 4 + c]);
  Var<double> one = embedding(tape.constant(table), test::ints(Shape{}, {3}));
  ASSERT_EQ(one.shape(), Shape({4}));
  for (Index c = 0; c < 4; ++c) EXPECT_EQ(one.value()[c], table[12 + c]);
}

TEST(EmbeddingTest, BackwardScatterAddsRepeatedIds) {
  const DynTensor<std::int64_t> ids = test::ints(Shape{5}, {1, 3, 1, 1, 0});
  GradCheckFn f = [&ids](Tape<double>&, const std::vector<Var<double>>& v) { return embedding(v[0], ids); };
  EXPECT_TRUE(test::grads_match(f, {test::uniform(Shape{4, 3}, 2)}));

  // Large: 512 ids into 50 rows of 96 (threads split the columns).
  DynTensor<std::int64_t> many(Shape{8, 64});
  for (Index i = 0; i < many.numel(); ++i) many[i] = (i * 7) % 50;
  Tape<double> tape;
  Var<double> table = tape.leaf(test::uniform(Shape{50, 96}, 3));
  Var<double> y = embedding(table, many);
  const DynTensor<double> dy = test::uniform(y.shape(), 4);
  tape.backward(y, dy);
  DynTensor<double> ref = DynTensor<double>::zeros(Shape{50, 96});
  for (Index n = 0; n < many.numel(); ++n)
    for (Index c = 0; c < 96; ++c) ref[many[n] * 96 + c] += dy[n * 96 + c];
  // The same additions in the same (id) order: exact.
  for (Index i = 0; i < ref.numel(); ++i) ASSERT_EQ(table.grad()[i], ref[i]) << "at " << i;
}

TEST(EmbeddingTest, OutOfRangeIdsNameTheIdAndV) {
  Tape<double> tape;
  Var<double> table = tape.constant(test::uniform(Shape{6, 4}, 1));
  EXPECT_TRUE(test::throws_with([&] { embedding(table, test::ints(Shape{3}, {0, 6, 1})); },
                                {"embedding", "id 6", "element 1", "V = 6", "[6, 4]"}));
  EXPECT_TRUE(test::throws_with([&] { embedding(table, test::ints(Shape{2}, {-1, 0})); }, {"embedding", "id -1", "V = 6"}));
  EXPECT_TRUE(test::throws_with([&] { embedding(tape.constant(test::uniform(Shape{6}, 1)), test::ints(Shape{1}, {0})); },
                                {"embedding", "(V, C)", "[6]"}));
}

}  // namespace
}  // namespace qaware
