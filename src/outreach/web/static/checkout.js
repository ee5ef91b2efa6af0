// Buying a credit pack: the API makes the Razorpay order, Razorpay Checkout takes the
// payment, the API verifies its signature and adds the credits (once).
"use strict";

async function callApi(path, body, csrf, extraHeaders) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, ...extraHeaders },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.detail || answer.title);
  return answer;
}

async function buyPack(button) {
  const csrf = button.dataset.csrf;
  try {
    const order = await callApi("/v1/payments/orders", { pack_id: button.dataset.pack }, csrf,
      { "Idempotency-Key": crypto.randomUUID() });
    const checkout = new Razorpay({
      key: order.key_id, order_id: order.razorpay_order_id, amount: order.amount,
      currency: order.currency, name: order.name, description: order.description,
      prefill: order.prefill, notes: order.notes,
      handler: async (paid) => {
        await callApi("/v1/payments/verify", paid, csrf, {});
        location.reload();
      },
    });
    checkout.open();
  } catch (error) {
    alert(error.message);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("button.buy").forEach((button) => {
    button.addEventListener("click", () => buyPack(button));
  });
});
