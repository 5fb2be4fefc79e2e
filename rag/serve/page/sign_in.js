// Gradio's sign-in form empties both of its fields after a wrong password, so a reader who mistyped the
// password types the user name again too. This puts the user name back, and the cursor in the password field.
(() => {
  const send = window.fetch.bind(window);
  window.fetch = async (resource, init) => {
    const response = await send(resource, init);
    const url = new URL(resource instanceof Request ? resource.url : String(resource), location.href);
    const user = init?.body instanceof FormData ? init.body.get("username") : null;
    if (response.status === 400 && /\/login\/?$/.test(url.pathname) && typeof user === "string" && user) {
      setTimeout(() => keepUserName(user), 0); // after the form has emptied its fields
    }
    return response;
  };

  function keepUserName(user) {
    const inputs = [...document.querySelectorAll("input")];
    const password = inputs.find((input) => input.type === "password");
    const name = inputs[inputs.indexOf(password) - 1];
    if (!password || !name || name.value) return;
    name.value = user;
    name.dispatchEvent(new Event("input", { bubbles: true })); // the form's own copy of the value follows
    password.focus();
  }
})();
